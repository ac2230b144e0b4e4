"""Unit tests of roles/vpsnet_tune/files/vpsnet-qdisc against a fake `tc`/`ip` that
keeps qdisc state the way the kernel does (mq creates one child per TX queue the
device has; only the queues that are up are shown). The real thing runs on lab
guests in molecule/kvm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from testlib.vpsnet_tune_helpers import load_script

vq = load_script("vpsnet-qdisc", "vpsnet_qdisc")
CAP_57 = 57 * 125_000


class FakeNic:
    """One NIC's qdiscs: `root` and, under mq, one child per TX queue the device has."""

    def __init__(self, real: int, total: int, root: str = "mq", child: str = "fq_codel") -> None:
        self.real, self.total = real, total
        self.root: dict[str, Any] = {"kind": root, "handle": "0:", "root": True}
        self.children = {q: {"kind": child} for q in range(1, total + 1)} if root == "mq" else {}
        self.calls: list[list[str]] = []

    @staticmethod
    def _shown(qdisc: dict[str, Any], **where: Any) -> dict[str, Any]:
        options = {"maxrate": qdisc["maxrate"]} if "maxrate" in qdisc else {}
        return {"kind": qdisc["kind"], "handle": qdisc.get("handle", "0:"), **where,
                "options": options}

    def show(self) -> list[dict[str, Any]]:
        out = [self._shown(self.root, root=True)]
        prefix = self.root["handle"].rstrip(":").lstrip("0")
        for queue in range(1, self.real + 1) if self.root["kind"] == "mq" else ():
            out.append(self._shown(self.children[queue], parent=f"{prefix}:{queue:x}"))
        return out

    @staticmethod
    def _qdisc(args: list[str], old: dict[str, Any] | None) -> dict[str, Any]:
        new: dict[str, Any] = {"kind": args[0]}
        if old and old["kind"] == args[0] and "maxrate" in old:
            new["maxrate"] = old["maxrate"]  # fq's change keeps what it is not given
        if "maxrate" in args:
            rate = int(args[args.index("maxrate") + 1].removesuffix("Bps"))
            new.pop("maxrate", None)
            if rate != vq.FQ_UNCAPPED:
                new["maxrate"] = rate
        return new

    def __call__(self, argv: list[str]) -> str:
        self.calls.append(argv)
        if argv[:2] == ["ip", "-d"]:
            return json.dumps([{"ifname": "eth1", "num_tx_queues": self.total}])
        if argv[:4] == ["tc", "-j", "qdisc", "show"]:
            return json.dumps(self.show())
        assert argv[:3] == ["tc", "qdisc", "replace"], argv
        where, rest = argv[5], argv[6:]
        if where == "root" and rest[:3] == ["handle", "1:", "mq"]:
            self.root = {"kind": "mq", "handle": "1:", "root": True}
            self.children = {q: {"kind": "fq"} for q in range(1, self.total + 1)}
        elif where == "root":
            self.root = {"handle": "8001:", "root": True, **self._qdisc(rest, self.root)}
        else:
            assert where == "parent" and rest[0].startswith(self.root["handle"]), argv
            queue = int(rest[0].split(":")[1], 16)
            assert 1 <= queue <= self.total, argv
            self.children[queue] = self._qdisc(rest[1:], self.children[queue])
        return ""


@pytest.fixture()
def sysroot(tmp_path: Path) -> Path:
    for name, queues in (("eth1", 4), ("eth0", 1)):
        nic = tmp_path / "sys/class/net" / name
        for q in range(queues):
            (nic / "queues" / f"tx-{q}").mkdir(parents=True)
        (nic / "device").mkdir()
    (tmp_path / "sys/class/net/docker0/queues/tx-0").mkdir(parents=True)
    return tmp_path


def main(sysroot: Path, fake: FakeNic, *argv: str) -> int:
    return int(vq.main(list(argv), run=fake, root=str(sysroot)))


def test_spec_parsing() -> None:
    assert vq.parse_spec("fq maxrate 57mbit\n") == ("fq", CAP_57)
    assert vq.parse_spec("# managed by Ansible\nfq") == ("fq", vq.FQ_UNCAPPED)
    assert vq.parse_spec("fq_codel") == ("fq_codel", None)
    assert vq.tc_args("fq", CAP_57) == ["fq", "maxrate", "7125000Bps"]


@pytest.mark.parametrize("bad", ["", "fq maxrate", "fq maxrate 57", "fq maxrate 0mbit",
                                 "fq maxrate 40000mbit", "fq_codel target 5ms"])
def test_bad_spec_is_named(bad: str) -> None:
    with pytest.raises(vq.SpecError) as err:
        vq.parse_spec(bad)
    assert bad.strip() in str(err.value) or bad == ""


def test_multiqueue_nic_gets_mq_and_the_cap_on_every_queue_the_device_has(sysroot: Path) -> None:
    fake = FakeNic(real=4, total=8)
    assert main(sysroot, fake, "--qdisc", "fq maxrate 57mbit", "--check", "eth1") == vq.NOT_RIGHT
    assert not [c for c in fake.calls if "replace" in c], "--check changed something"
    assert main(sysroot, fake, "--qdisc", "fq maxrate 57mbit", "eth1") == 0
    assert fake.root["kind"] == "mq"
    # queues 5-8 are down now; an `ethtool -L` later brings them up already capped
    assert all(c == {"kind": "fq", "maxrate": CAP_57} for c in fake.children.values())
    fake.calls.clear()
    assert main(sysroot, fake, "--qdisc", "fq maxrate 57mbit", "eth1") == 0
    assert not [c for c in fake.calls if "replace" in c], "a second run changed something"


def test_a_cap_is_removed_when_no_longer_asked_for(sysroot: Path) -> None:
    fake = FakeNic(real=4, total=4)
    assert main(sysroot, fake, "--qdisc", "fq maxrate 57mbit", "eth1") == 0
    assert main(sysroot, fake, "--qdisc", "fq", "--check", "eth1") == vq.NOT_RIGHT
    assert main(sysroot, fake, "--qdisc", "fq", "eth1") == 0
    assert all(c == {"kind": "fq"} for c in fake.children.values())


def test_single_queue_nic_gets_it_at_the_root(sysroot: Path) -> None:
    fake = FakeNic(real=1, total=1, root="fq_codel")
    assert main(sysroot, fake, "--qdisc", "fq maxrate 57mbit", "eth0") == 0
    assert fake.root["kind"] == "fq" and fake.root["maxrate"] == CAP_57


@pytest.mark.parametrize(("shown", "queues", "ok"), [
    ([{"kind": "noqueue", "root": True}], 1, True),
    ([{"kind": "fq", "root": True}], 1, True),
    ([{"kind": "fq", "root": True}], 4, False),  # one fq funnelling 4 queues
    ([{"kind": "pfifo_fast", "root": True}], 1, False),
    ([{"kind": "mq", "handle": "0:", "root": True},
      *({"kind": "fq", "parent": f":{q}"} for q in range(1, 5))], 4, True),
    ([{"kind": "mq", "handle": "0:", "root": True},
      *({"kind": "fq", "parent": f":{q}"} for q in range(1, 4))], 4, False),  # one missing
    ([{"kind": "mq", "handle": "1:", "root": True}, {"kind": "fq_codel", "parent": "1:1"},
      *({"kind": "fq", "parent": f"1:{q}"} for q in range(2, 5))], 4, False),
    ([], 1, False),
])
def test_problems(shown: list[dict[str, Any]], queues: int, ok: bool) -> None:
    assert (vq.problems(shown, queues, "fq", vq.FQ_UNCAPPED) == []) is ok


def test_no_ifname_means_every_nic_with_a_device(sysroot: Path) -> None:
    assert vq.device_nics(str(sysroot)) == ["eth0", "eth1"]


def test_bad_config_fails_naming_it_and_changes_nothing(
    sysroot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "qdisc.conf"
    conf.write_text("fq maxrate fast\n")
    fake = FakeNic(real=4, total=4)
    assert main(sysroot, fake, "--conf", str(conf), "eth1") == 1
    assert "'fq maxrate fast'" in capsys.readouterr().err
    assert fake.calls == []
