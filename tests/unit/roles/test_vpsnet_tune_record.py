"""Unit tests of roles/vpsnet_tune/files/vpsnet-tune save and restore against a fake
root with stub tools (vpsnet_tune_helpers.Host): recorded once, put back by name,
bad requests refused before anything; and the role's side of it (the keys it
records, its new variables documented and checked)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testlib.vpsnet_tune_helpers import REPO, SYSCTLS, Host, vt


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Host:
    return Host(tmp_path, monkeypatch)


# --- save / restore -----------------------------------------------------------


def _request(host: Host) -> str:
    return json.dumps(
        {
            "sysctls": [*SYSCTLS, "vm.nr_hugepages"],
            "nics": ["eth0"],
            "irqbalance_file": "/etc/default/irqbalance",
            "instance_configs_file": "/etc/default/instance_configs.cfg",
            "grub_file": "/etc/default/grub.d/vpsnet.cfg",
            "installed": ["/etc/sysctl.d/90-vpsnet.conf"],
        }
    )


def test_save_then_restore_round_trip(
    host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "record"
    host.write("etc/default/irqbalance", '#IRQBALANCE_ARGS=""\nIRQBALANCE_ARGS="--foo"')
    host.write("etc/default/instance_configs.cfg",
               "[Accounts]\nx = 1\n[InstanceSetup]\nset_multiqueue = true")
    root = ["--root", str(host.root), "--dir", str(record)]
    assert vt.main(["save", *root, "--check", "--request", _request(host)]) == 0
    assert not record.exists() and "would record" in capsys.readouterr().out
    assert vt.main(["save", *root, "--request", _request(host)]) == 0
    saved = json.loads((record / "original.json").read_text())
    assert saved["pristine"] is True
    assert saved["sysctls"]["net.ipv4.tcp_rmem"] == "4096 131072 33554432"
    assert saved["irqbalance"] == {
        "path": "/etc/default/irqbalance",
        "exists": True,
        "line": 'IRQBALANCE_ARGS="--foo"',
    }
    assert saved["grub"] == {
        "path": "/etc/default/grub.d/vpsnet.cfg",
        "exists": False,
        "content": None,
    }
    assert (record / "nic/vpsnet-tune-original.sh").exists()
    assert saved["instance_configs"] == {
        "path": "/etc/default/instance_configs.cfg", "exists": True, "set_multiqueue": "true"}
    capsys.readouterr()
    # vpsnet_tune changes things
    host.sysctl("net.core.somaxconn", "8192")
    host.sysctl("vm.nr_hugepages", "64")
    host.write("proc/irq/27/smp_affinity_list", "1")  # virtio0-output.0
    host.write("sys/class/net/eth0/queues/tx-2/xps_cpus", "00000000,00000001")
    host.write("sys/class/net/eth0/queues/rx-1/rps_cpus", "c")
    # a later run records nothing again
    assert vt.main(["save", *root, "--request", _request(host)]) == 0
    assert capsys.readouterr().out == ""
    assert (
        json.loads((record / "original.json").read_text())["sysctls"]["net.core.somaxconn"]
        == "4096"
    )
    # check mode names every change and makes none
    assert vt.main(["restore", *root, "--check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "would restore sysctl net.core.somaxconn: 4096" in lines
    assert "would restore eth0 tx-2 xps_cpus: 4" in lines
    assert host.read("proc/sys/net/core/somaxconn") == "8192"
    assert vt.main(["restore", *root]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines) == sorted(
        [
            "restored sysctl net.core.somaxconn: 4096",
            "restored sysctl vm.nr_hugepages: 0",
            "restored MTU, channels, rings, adaptive RX and qdiscs of eth0",
            "restored irq 27 (virtio0-output.0) smp_affinity_list: 0-3",
            "restored eth0 tx-2 xps_cpus: 4",
            "restored eth0 rx-1 rps_cpus: 0",
        ]
    )
    assert host.read("proc/sys/net/core/somaxconn") == "4096"
    assert host.read("proc/sys/vm/nr_hugepages") == "0"
    assert host.read("proc/irq/27/smp_affinity_list") == "0-3"
    assert host.read("sys/class/net/eth0/queues/tx-2/xps_cpus") == "4"
    assert host.read("sys/class/net/eth0/queues/rx-1/rps_cpus") == "0"
    assert "revert vpsnet-tune-original" in (host.stubs / "guard.calls").read_text()
    # nothing left to do but the NIC revert (the guard's commands check themselves)
    assert vt.main(["restore", *root]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "restored MTU, channels, rings, adaptive RX and qdiscs of eth0"
    ]


def test_save_adds_only_new_sysctl_keys(
    host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "record"
    root = ["--root", str(host.root), "--dir", str(record)]
    req = json.loads(_request(host))
    req["sysctls"] = ["net.core.somaxconn"]
    assert vt.main(["save", *root, "--request", json.dumps(req)]) == 0
    host.sysctl("net.core.somaxconn", "8192")
    host.sysctl("net.core.netdev_budget", "300")
    req["sysctls"] = ["net.core.somaxconn", "net.core.netdev_budget"]
    capsys.readouterr()
    assert vt.main(["save", *root, "--request", json.dumps(req)]) == 0
    assert "added" in capsys.readouterr().out
    saved = json.loads((record / "original.json").read_text())["sysctls"]
    assert saved == {"net.core.somaxconn": "4096", "net.core.netdev_budget": "300"}


def test_irq_restored_by_name_after_renumbering(host: Host, tmp_path: Path) -> None:
    record = tmp_path / "record"
    root = ["--root", str(host.root), "--dir", str(record)]
    host.write("proc/irq/26/smp_affinity_list", "2")  # virtio0-input.0, before vpsnet
    assert vt.main(["save", *root, "--request", _request(host)]) == 0
    # a channel change moved virtio0-input.0 to IRQ 40
    text = host.read("proc/interrupts").replace(" 26:", " 40:")
    host.write("proc/interrupts", text)
    host.write("proc/irq/40/smp_affinity_list", "0-3")
    assert vt.main(["restore", *root]) == 0
    assert host.read("proc/irq/40/smp_affinity_list") == "2"


def test_not_pristine_when_vpsnet_files_are_there(
    host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host.write("etc/sysctl.d/90-vpsnet.conf", "net.core.somaxconn = 4096")
    record = tmp_path / "record"
    assert (
        vt.main(
            ["save", "--root", str(host.root), "--dir", str(record), "--request", _request(host)]
        )
        == 0
    )
    assert json.loads((record / "original.json").read_text())["pristine"] is False
    assert "an earlier vpsnet_tune had tuned this host" in capsys.readouterr().out


def test_restore_without_record_or_with_a_failing_guard(
    host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "record"
    root = ["--root", str(host.root), "--dir", str(record)]
    assert vt.main(["restore", *root]) == 2
    assert "no record" in capsys.readouterr().err
    assert vt.main(["save", *root, "--request", _request(host)]) == 0
    (record / "nic/vpsnet-tune-original.sh").unlink()
    assert vt.main(["restore", *root]) == 2
    assert "cannot be put back" in capsys.readouterr().err


@pytest.mark.parametrize(
    "request_text",
    [
        "[]",
        "{bad",
        json.dumps({"sysctls": ["net/../x"]}),
        json.dumps({"nics": ["eth0/x"]}),
        json.dumps({"grub_file": "relative.cfg"}),
    ],
)
def test_bad_request_refused_before_anything(
    host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str], request_text: str
) -> None:
    record = tmp_path / "record"
    assert (
        vt.main(["save", "--root", str(host.root), "--dir", str(record), "--request", request_text])
        == 2
    )
    assert not record.exists()
    assert "--request" in capsys.readouterr().err


def test_the_recorded_sysctls_are_the_ones_the_role_sets() -> None:
    """original.yml records, before sysctl.yml writes them, the keys sysctl.yml sets:
    both take them from the one map in vars/main.yml, so no key can be set and not
    come back with vpsnet_tune_state absent."""
    import yaml

    role = REPO / "roles/vpsnet_tune"
    base = yaml.safe_load((role / "vars/main.yml").read_text())["__vpsnet_tune_sysctls_base"]
    assert {"net.core.default_qdisc", "net.ipv4.tcp_rmem", "vm.nr_hugepages"} <= set(base)
    tasks = yaml.safe_load((role / "tasks/sysctl.yml").read_text())
    collect = next(t for t in tasks if t["name"] == "Collect the sysctls")
    assert "vars" not in collect and "__vpsnet_tune_sysctls_base | combine(" in \
        collect["ansible.builtin.set_fact"]["__vpsnet_tune_sysctls_all"]
    tasks = yaml.safe_load((role / "tasks/original.yml").read_text())
    save = next(t for t in tasks if t["name"] == "Record the host's pre-vpsnet values once")
    assert "__vpsnet_tune_sysctls_base.keys()" in save["vars"]["__vpsnet_tune_save_keys_all"]
    assert "__vpsnet_tune_sysctls_base" not in "".join(
        p.read_text() for p in (role / "tasks").glob("*.yml") if p.name != "sysctl.yml"
        and p.name != "original.yml")


def test_new_variables_documented_and_checked() -> None:
    """Each new variable: a default, an argument_specs entry with the same default, a
    tasks/validate.yml check."""
    import yaml

    role = REPO / "roles/vpsnet_tune"
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text())
    specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    validate = (role / "tasks/validate.yml").read_text()
    for name in ("vpsnet_tune_state", "vpsnet_tune_absent_without_record",
                 "vpsnet_tune_verify_interval_seconds", "vpsnet_tune_verify_textfile_dir"):
        assert options[name]["default"] == defaults[name], name
        assert f"{{name: {name}, value:" in validate, name


@pytest.mark.parametrize(("name", "bad", "says"), [
    ("vpsnet_tune_state", "gone", "vpsnet_tune_state"),
    ("vpsnet_tune_state", "absent\n", "vpsnet_tune_state"),
    ("vpsnet_tune_absent_without_record", "maybe", "vpsnet_tune_absent_without_record"),
    ("vpsnet_tune_verify_interval_seconds", 5, "vpsnet_tune_verify_interval_seconds"),
    ("vpsnet_tune_verify_interval_seconds", "300s", "vpsnet_tune_verify_interval_seconds"),
    ("vpsnet_tune_verify_textfile_dir", "var/lib/x", "vpsnet_tune_verify_textfile_dir"),
    ("vpsnet_tune_verify_textfile_dir", "/var/lib/../etc", "vpsnet_tune_verify_textfile_dir"),
])
def test_new_inputs_checked_by_validate_yml(name: str, bad: object, says: str) -> None:
    from testlib.vpsnet_inputs_helpers import errors

    assert errors("vpsnet_tune") == []
    assert errors("vpsnet_tune", {"vpsnet_tune_verify_textfile_dir": ""}) == []
    found = errors("vpsnet_tune", {name: bad})
    assert len(found) == 1 and found[0].startswith(says), found


FIXTURES = [HealthCheck.function_scoped_fixture]  # tmp_path, capsys reused: nothing is written


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES)
@given(text=st.one_of(st.text(max_size=40), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["sysctls", "nics", "irqbalance_file", "grub_file", "installed", "x"]),
        inner, max_size=4), max_leaves=8).map(json.dumps)))
def test_any_request_never_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    record = tmp_path / "rec"
    rc = vt.main(["save", "--check", "--root", str(tmp_path / "root"), "--dir", str(record),
                  f"--request={text}"])  # "=": a text starting with '-' is the value
    err = capsys.readouterr().err
    assert rc in (0, 2) and "Traceback" not in err and err.count("\n") <= 1, err
    assert not record.exists()
