"""Property tests of the repository key inputs, in-process (as
test_vpsnet_inputs.py): private or secret keys and garbage are refused as key
text and as a key file, real gpg keys are told apart, and exactly one of key
and key file is set. Counts of bad inputs per class: printed with -s and
checked by the last test."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from testlib.input_counts import InputCounts
from testlib.vpsnet_inputs_helpers import GOOD_KEY, SETTINGS, armor, errors, packet
from testlib.vpsnet_inputs_helpers import rejected as rejected_in

COUNTS = InputCounts("roles' bad inputs (in-process): keys")
_print_counts = COUNTS.report_fixture()
rejected = functools.partial(rejected_in, COUNTS)


@pytest.fixture(scope="session")
def good_key() -> str:
    return GOOD_KEY


@pytest.fixture(scope="session")
def gpg_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, bytes]]:
    """A real key pair from gpg: public and secret, armored and binary."""
    if shutil.which("gpg") is None:
        pytest.skip("no gpg")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    run = ["gpg", "--homedir", str(home), "--batch", "--quiet", "--pinentry-mode", "loopback",
           "--passphrase", ""]
    subprocess.run([*run, "--quick-gen-key", "T <t@example>", "ed25519", "sign", "never"],
                   check=True, capture_output=True, timeout=60)
    out = {}
    for name, args in (("pub.asc", ["--armor", "--export"]), ("pub.gpg", ["--export"]),
                       ("sec.asc", ["--armor", "--export-secret-keys"]),
                       ("sec.gpg", ["--export-secret-keys"])):
        out[name] = subprocess.run([*run, *args, "t@example"], check=True, capture_output=True,
                                   timeout=60).stdout
    yield out
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False,
                   capture_output=True, timeout=30)


SECRET = st.builds(
    lambda tag, body, label, lead: armor(
        (packet(6, b"\x04" + bytes(8)) if lead else b"") + packet(tag, b"\x04" + body), label),
    st.sampled_from([5, 7]), st.binary(max_size=60),
    st.sampled_from(["PUBLIC KEY BLOCK", "PRIVATE " "KEY BLOCK"]), st.booleans())
GARBAGE = st.one_of(
    st.text(max_size=200).filter(lambda s: s != ""),
    st.binary(max_size=200).map(lambda b: armor(b, "PUBLIC KEY BLOCK")),
    st.sampled_from(["-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n"
                     "-----END PGP PUBLIC KEY BLOCK-----",
                     "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
                     "-----BEGIN OPENSSH PRIVATE " "KEY-----\nb3Blbg==\n"
                     "-----END OPENSSH PRIVATE " "KEY-----"]),
    st.binary(max_size=60).map(lambda b: armor(packet(6, b"\x09" + b), "PUBLIC KEY BLOCK")),
    st.binary(max_size=60).map(lambda b: armor(packet(2, b"\x04" + b), "PUBLIC KEY BLOCK")),
    st.binary(max_size=60).map(lambda b: armor(b"\x99\xff\xff" + b, "PUBLIC KEY BLOCK")),
)


@SETTINGS
@given(key=SECRET)
def test_private_keys_are_refused(key: str, good_key: str) -> None:
    errs = rejected("vpsnet_repo", "vpsnet_repo_key", key, "private/secret key")
    assert any("PRIVATE" in e or "SECRET" in e for e in errs), errs


@SETTINGS
@given(key=GARBAGE)
def test_garbage_keys_are_refused(key: str) -> None:
    rejected("vpsnet_repo", "vpsnet_repo_key", key, "garbage key")


@SETTINGS
@given(key=GARBAGE.map(lambda k: k.encode() if isinstance(k, str) else k) | SECRET.map(str.encode))
def test_key_files_must_hold_a_public_key(key: bytes,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("k") / "key.asc"
    path.write_bytes(key)
    errs = errors("vpsnet_repo", {"vpsnet_repo_key": "", "vpsnet_repo_key_src": str(path),
                                  "__vpsnet_repo_key_path": str(path)})
    assert any("vpsnet_repo_key_src" in e for e in errs), errs
    COUNTS.add("garbage/secret key file", rejected=True)


def test_real_gpg_keys(gpg_keys: dict[str, bytes], tmp_path: Path) -> None:
    assert errors("vpsnet_repo", {"vpsnet_repo_key": gpg_keys["pub.asc"].decode()}) == []
    rejected("vpsnet_repo", "vpsnet_repo_key", gpg_keys["sec.asc"].decode(), "private/secret key")
    for name, ok in (("pub.asc", True), ("pub.gpg", True), ("sec.asc", False), ("sec.gpg", False)):
        path = tmp_path / name
        path.write_bytes(gpg_keys[name])
        errs = errors("vpsnet_repo", {"vpsnet_repo_key": "", "vpsnet_repo_key_src": str(path),
                                      "__vpsnet_repo_key_path": str(path)})
        assert (errs == []) is ok, (name, errs)


def test_both_or_no_key_is_refused(good_key: str) -> None:
    errs = errors("vpsnet_repo", {"vpsnet_repo_key": good_key, "vpsnet_repo_key_src": "/k.asc",
                                  "__vpsnet_repo_key_path": "/nonexistent/k.asc"})
    assert any("set exactly one" in e for e in errs), errs


def test_zz_counts() -> None:
    """Runs last in this file: every class produced bad inputs, all rejected
    (the table is printed after it, with -s)."""
    for klass in ["private/secret key", "garbage key"]:
        assert COUNTS[klass].rejected > 0, klass
