"""vpsnet-lab's arguments under generated bad values (issue 21; the rules are in
test_cli_arguments.py's docstring): refused before the lab, an image build,
the inventory or ssh is touched."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from testlib.cli_refusal import (
    ANY,
    COUNTS,
    EMPTY,
    FUZZ,
    NAN_INF,
    NEGATIVE,
    TRAVERSAL,
    WORD,
    check_refused,
    control,
    huge,
    trailing_newline,
)

from vpsnet_lab import cli as lab_cli

_print_counts = COUNTS.report_fixture()


class RefusingLab:
    """Stands in for Lab, image.build, inventory.write and ssh: any use fails the test."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"the lab was touched for a refused argument: {args}")

    @classmethod
    def up(cls, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("lab up for a refused argument")


@pytest.fixture(scope="module")
def lab_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("lab-state")
    (state / "state.json").write_text('{"spec": {}, "guests": {}}')
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lab_cli, "Lab", RefusingLab)
        mp.setattr(lab_cli.image, "build", RefusingLab)
        mp.setattr(lab_cli.inventory, "write", RefusingLab)
        mp.setattr(lab_cli.os, "execvp", RefusingLab)
        yield state


GUEST_BAD = st.sampled_from([
    ("control_char", control()), ("trailing_newline", trailing_newline(st.just("aws-a"))),
    ("path_traversal", TRAVERSAL), ("empty", EMPTY),
    ("not_a_name", st.sampled_from(["Aws", "1st", "a_b", "a" * 32, "a b", "-x", "\uff41"]))])
KERNEL_BAD = st.sampled_from([
    ("control_char", control()),
    ("trailing_newline", st.sampled_from(["6.1\n", "all\n", "6.1.0-47-cloud-amd64\n"])),
    ("unknown_choice", st.sampled_from(["6.2", "7", "latest", "ALL", "6.1.0-47-amd64",
                                        "6.1.0-\u0664\u0667-cloud-amd64"])),
    ("path_traversal", TRAVERSAL), ("empty", EMPTY)])
PATH_BAD = st.sampled_from([("control_char", control()), ("empty", EMPTY),
                            ("trailing_newline", st.just("/tmp/lab.yml\n"))])
LAB_CASES: dict[str, tuple[Any, Callable[[str], list[str]], str]] = {
    "--state": (PATH_BAD, lambda v: [f"--state={v}", "status"], "argument --state"),
    "--kernel": (KERNEL_BAD, lambda v: ["image", "build", f"--kernel={v}"], "argument --kernel"),
    "--firmware": (st.sampled_from([("unknown_choice", ANY.filter(
        lambda v: v not in ("bios", "uefi-secureboot")))]),
        lambda v: ["image", "build", "--kernel=6.1", f"--firmware={v}"], "argument --firmware"),
    "--timeout": (st.sampled_from([("number_nan_inf", NAN_INF), ("number_huge", huge(86_401)),
                                   ("number_negative", NEGATIVE | st.just("0")),
                                   ("control_char", control())]),
                  lambda v: ["up", "spec.yml", f"--timeout={v}"], "argument --timeout"),
    "spec": (PATH_BAD, lambda v: ["up", "--", v], "argument spec"),
    "--inventory": (PATH_BAD, lambda v: ["up", "spec.yml", f"--inventory={v}"],
                    "argument --inventory"),
    "--output": (PATH_BAD, lambda v: ["inventory", f"--output={v}"], "argument --output"),
    "ssh NAME": (GUEST_BAD, lambda v: ["ssh", "--", v, "true"], "argument name"),
    "link NAME": (GUEST_BAD, lambda v: ["link", "--", v, "eth0", "up"], "argument name"),
    "pause NAME": (GUEST_BAD, lambda v: ["pause", "--", v], "argument name"),
    "resume NAME": (GUEST_BAD, lambda v: ["resume", "--", v], "argument name"),
    "link NIC": (st.sampled_from([
        ("control_char", control()), ("trailing_newline", st.just("eth0\n")),
        ("empty", EMPTY), ("path_traversal", TRAVERSAL),
        ("unknown_choice", st.sampled_from(["wlan0", "eth", "eth\u0663", "eth-1", "eth100"]))]),
        lambda v: ["link", "--", "aws-a", v, "up"], "argument nic"),
    "link UPDOWN": (st.sampled_from([("unknown_choice", ANY.filter(
        lambda v: v not in ("up", "down")))]),
        lambda v: ["link", "--", "aws-a", "eth0", v], "argument updown"),
    "command": (st.sampled_from([("unknown_choice", WORD.filter(lambda w: w not in (
        "image", "up", "down", "status", "ssh", "inventory", "link", "pause", "resume",
        "ansible-env", "identify")))]), lambda v: [v], "argument cmd"),
}


@settings(FUZZ, max_examples=300)
@given(st.data())
def test_lab_bad_arguments(lab_state: Path, data: st.DataObject) -> None:
    what = data.draw(st.sampled_from(sorted(LAB_CASES)))
    cases, argv, name = LAB_CASES[what]
    cls, value = data.draw(cases.flatmap(lambda cv: cv[1].map(lambda v: (cv[0], v))))
    state = [] if what == "--state" else ["--state", str(lab_state)]
    check_refused(cls, lab_cli.main, [*state, *argv(value)], {2}, (name,), value, lab_state)


def test_lab_good_arguments_still_parse() -> None:
    args = lab_cli.parser().parse_args(
        ["--state", "/tmp/s", "link", "aws-a", "eth1", "down"])
    assert (args.name, args.nic, args.updown) == ("aws-a", "eth1", "down")
    for kernel in ("all", "6.1", "6.12", "6.1.0-47-cloud-amd64", "6.12.107+deb12-cloud-amd64"):
        assert lab_cli.parser().parse_args(["image", "build", "--kernel", kernel]).kernel == kernel
    assert lab_cli.parser().parse_args(["up", "s.yml", "--timeout", "600"]).timeout == 600.0
