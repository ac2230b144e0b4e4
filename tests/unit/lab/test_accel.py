"""The accelerator decision: KVM only when a probe ran a guest, TCG otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from vpsnet_lab import accel
from vpsnet_lab.accel import AccelError, choose, requested
from vpsnet_lab.image import Image
from vpsnet_lab.qemu import qemu_command
from vpsnet_lab.spec import SpecError
from vpsnet_lab.specparse import parse

from .test_spec import GOOD


def works() -> str | None:
    return None


def broken() -> str | None:
    return "KVM internal error. Suberror: 1"


def never(*_: object) -> str | None:
    raise AssertionError("TCG was asked for: KVM must not even be probed")


def test_auto_takes_kvm_when_the_probe_runs_a_guest() -> None:
    got = choose("auto", works)
    assert (got.name, got.qemu_args) == ("kvm", ["-accel", "kvm", "-cpu", "host"])


def test_auto_falls_back_to_tcg_and_says_why() -> None:
    got = choose("auto", broken)
    assert (got.name, got.qemu_args) == ("tcg", ["-accel", "tcg", "-cpu", "max"])
    assert "KVM unusable (KVM internal error. Suberror: 1" in got.reason
    assert got.as_dict()["requested"] == "auto"


def test_tcg_request_skips_the_probe() -> None:
    assert choose("tcg", never).name == "tcg"


def test_kvm_request_that_cannot_work_is_an_error() -> None:
    with pytest.raises(AccelError, match="KVM was requested but is not usable: KVM internal"):
        choose("kvm", broken)
    assert choose("kvm", works).name == "kvm"


def test_environment_overrides_the_spec_and_bad_values_are_named() -> None:
    assert requested(None, env={}) == "auto"
    assert requested("tcg", env={}) == "tcg"
    assert requested("tcg", env={accel.ENV: "kvm"}) == "kvm"
    with pytest.raises(AccelError, match=r"\$VPSNET_LAB_ACCEL: unknown accelerator 'xen'"):
        requested("tcg", env={accel.ENV: "xen"})


def test_spec_accel_is_validated() -> None:
    assert parse({**GOOD, "accel": "tcg"}, "t.yml").accel == "tcg"
    assert parse(GOOD, "t.yml").accel == "auto"
    with pytest.raises(SpecError) as exc:
        parse({**GOOD, "accel": "hvf"}, "t.yml")
    assert any("accel: unknown accelerator 'hvf'" in p for p in exc.value.problems)


def test_device_probe_reports_a_missing_node(tmp_path: Path) -> None:
    problem = accel.kvm_device_problem(tmp_path / "kvm")
    assert problem and problem.startswith(f"cannot open {tmp_path / 'kvm'}")


@pytest.mark.parametrize("name", ["kvm", "tcg"])
def test_qemu_command_uses_the_chosen_accelerator(name: str) -> None:
    spec = parse(GOOD, "t.yml")
    img = Image("6.1", "6.1.0-0-cloud-amd64", Path("/img"))
    cmd = qemu_command(spec, spec.guests[1], img, Path("/s/g1"), 50000, "k", {}, accel=name)
    i = cmd.index("-accel")
    assert cmd[i:i + 4] == accel.QEMU_ARGS[name]
    assert cmd.count("-accel") == 1 and cmd.count("-cpu") == 1


def test_this_kind_of_machine_is_detected_as_unusable() -> None:
    """/dev/kvm here opens and creates a VM (kvm-pvm) but runs no ordinary guest."""
    if not accel.KVM_DEV.exists() or accel.cpu_flags_note() != "CPU has no vmx/svm":
        pytest.skip("only meaningful on a host with /dev/kvm and no vmx/svm")
    kernel = next(Path("/boot").glob("vmlinuz-*-cloud-amd64"), None)
    if kernel is None:
        pytest.skip("no Debian cloud kernel in /boot to probe with")
    got = choose("auto", accel.default_probe(kernel))
    assert got.name == "tcg", got
