"""Module signatures: signer parsing and verification against a certificate, on
blobs laid out exactly as the kernel's sign-file writes them (CMS made by
openssl, no certificates, no signed attributes, struct module_signature, magic)."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from vpsnet_tools import abi, modsig


def make_cert(tmp: Path, name: str, cn: str) -> tuple[Path, Path]:
    key, crt = tmp / f"{name}.key", tmp / f"{name}.crt"
    subprocess.run(["openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-days", "1", "-subj", f"/O=vpsnet/CN={cn}", "-keyout", str(key),
                    "-out", str(crt)], check=True, capture_output=True)
    return key, crt


def sign(content: bytes, key: Path, crt: Path, tmp: Path, keyid: bool = False) -> bytes:
    (tmp / "content").write_bytes(content)
    cmd = ["openssl", "cms", "-sign", "-binary", "-noattr", "-nocerts", "-nosmimecap",
           "-md", "sha256", "-outform", "DER", "-in", str(tmp / "content"),
           "-signer", str(crt), "-inkey", str(key), "-out", str(tmp / "sig")]
    if keyid:
        cmd.append("-keyid")
    subprocess.run(cmd, check=True, capture_output=True)
    pkcs7 = (tmp / "sig").read_bytes()
    trailer = struct.pack(">BBBBB3xI", 0, 0, 2, 0, 0, len(pkcs7))
    return content + pkcs7 + trailer + modsig.SIG_MAGIC


@pytest.fixture()
def fleet(tmp_path: Path) -> tuple[Path, Path]:
    return make_cert(tmp_path, "fleet", "fleet key")


def test_unsigned_module_has_no_signature() -> None:
    assert modsig.split(b"\x7fELF not signed") is None


def test_signer_and_verification(tmp_path: Path, fleet: tuple[Path, Path]) -> None:
    key, crt = fleet
    body = b"\x7fELF" + bytes(range(256)) * 8
    sig = modsig.split(sign(body, key, crt, tmp_path))
    assert sig is not None and sig.content == body
    assert sig.signer.issuer == "O=vpsnet, CN=fleet key"
    assert sig.signer.hash == "sha256"
    issuer, serial = modsig.cert_id(modsig.load_cert_der(crt))
    assert (issuer, serial) == (sig.signer.issuer, sig.signer.serial)
    ok, why = modsig.verify(sig, crt)
    assert ok, why


def test_other_key_is_not_trusted(tmp_path: Path, fleet: tuple[Path, Path]) -> None:
    key, crt = fleet
    _, other = make_cert(tmp_path, "other", "someone else")
    sig = modsig.split(sign(b"\x7fELF module", key, crt, tmp_path))
    assert sig is not None
    ok, why = modsig.verify(sig, other)
    assert not ok and "someone else" in why and "fleet key" in why


def test_same_name_other_key_fails_the_real_check(tmp_path: Path) -> None:
    """A signer that names the fleet certificate but holds another key: only
    the cryptographic check can tell, and it does."""
    key, crt = make_cert(tmp_path, "fleet", "fleet key")
    forged = modsig.split(sign(b"\x7fELF module", key, crt, tmp_path))
    assert forged is not None
    tampered = modsig.Signature(b"\x7fELF modulE", forged.pkcs7, forged.signer)
    ok, why = modsig.verify(tampered, crt)
    assert not ok and "does not verify" in why


def test_key_identifier_signer(tmp_path: Path, fleet: tuple[Path, Path]) -> None:
    key, crt = fleet
    sig = modsig.split(sign(b"\x7fELF module", key, crt, tmp_path, keyid=True))
    assert sig is not None
    assert sig.signer.key_id and not sig.signer.issuer
    assert modsig.verify(sig, crt)[0]


@pytest.mark.parametrize("blob", [
    b"x" * 4 + modsig.SIG_MAGIC,  # shorter than the trailer
    b"x" * 64 + struct.pack(">BBBBB3xI", 0, 0, 1, 0, 0, 10) + modsig.SIG_MAGIC,  # not PKCS#7
    b"x" * 8 + struct.pack(">BBBBB3xI", 0, 0, 2, 0, 0, 4000) + modsig.SIG_MAGIC,  # length
    b"\x30\x03\x02\x01\x01" + struct.pack(">BBBBB3xI", 0, 0, 2, 0, 0, 5) + modsig.SIG_MAGIC,
])
def test_malformed_signatures_are_errors(blob: bytes) -> None:
    with pytest.raises(modsig.SignatureError):
        modsig.split(blob)


def test_bad_certificate_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.crt"
    bad.write_text("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
    with pytest.raises(modsig.SignatureError, match=r"bad\.crt"):
        modsig.load_cert_der(bad)
    bad.write_bytes(b"not der")
    with pytest.raises(modsig.SignatureError, match=r"not an X\.509"):
        modsig.load_cert_der(bad)


def test_secure_boot_variable(tmp_path: Path) -> None:
    var = tmp_path / "SecureBoot"
    assert not abi.secure_boot_enabled(var)
    var.write_bytes(b"\x06\x00\x00\x00\x01")
    assert abi.secure_boot_enabled(var)
    var.write_bytes(b"\x06\x00\x00\x00\x00")
    assert not abi.secure_boot_enabled(var)
