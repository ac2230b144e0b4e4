"""Kernel module signatures: who signed a .ko, and is it a given certificate.

A signed module ends with a PKCS#7 (CMS) SignedData blob, a struct
module_signature and the magic "~Module signature appended~\\n" (the kernel's
scripts/sign-file). The signer is named by issuer and serial number (or by
subject key identifier with sign-file -k); the signature itself is checked
with `openssl cms -verify` against the certificate, as the kernel would with
that certificate in a trusted keyring.
"""

from __future__ import annotations

import base64
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SIG_MAGIC = b"~Module signature appended~\n"
_SIG_STRUCT = struct.Struct(">BBBBB3xI")  # algo hash id_type signer_len key_id_len pad len
_PKEY_ID_PKCS7 = 2
_NAMES = {"2.5.4.3": "CN", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.6": "C",
          "1.2.840.113549.1.9.1": "emailAddress"}
_HASHES = {"2.16.840.1.101.3.4.2.1": "sha256", "2.16.840.1.101.3.4.2.2": "sha384",
           "2.16.840.1.101.3.4.2.3": "sha512", "1.3.14.3.2.26": "sha1",
           "2.16.840.1.101.3.4.2.4": "sha224"}


class SignatureError(Exception):
    pass


@dataclass(frozen=True)
class Signer:
    issuer: str  # "O=vpsnet, CN=..." ('' when named by key identifier)
    serial: str  # hex ('' when named by key identifier)
    key_id: str  # hex subject key identifier ('' when named by issuer and serial)
    hash: str

    def describe(self) -> str:
        who = self.issuer or f"key id {self.key_id}"
        return f"{who} (serial {self.serial})" if self.serial else who


@dataclass(frozen=True)
class Signature:
    content: bytes  # what was signed: the module without the trailer
    pkcs7: bytes
    signer: Signer


# --------------------------------------------------------------------------- DER


def _tlv(data: bytes, off: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at off."""
    if off + 2 > len(data):
        raise SignatureError("truncated DER")
    tag, first = data[off], data[off + 1]
    off += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or off + n > len(data):
            raise SignatureError("bad DER length")
        length = int.from_bytes(data[off:off + n], "big")
        off += n
    if off + length > len(data):
        raise SignatureError("truncated DER")
    return tag, off, off + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    while start < end:
        tag, s, e = _tlv(data, start)
        out.append((tag, s, e))
        start = e
    return out


def _oid(raw: bytes) -> str:
    if not raw:
        raise SignatureError("empty OID")
    parts = [raw[0] // 40, raw[0] % 40]
    value = 0
    for b in raw[1:]:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(value)
            value = 0
    return ".".join(map(str, parts))


def _name(data: bytes, start: int, end: int) -> str:
    """An X.501 Name as 'O=..., CN=...'."""
    out = []
    for _set_tag, rs, re_ in _children(data, start, end):  # SET per RDN
        for _seq_tag, as_, ae in _children(data, rs, re_):  # SEQUENCE {type, value}
            kids = _children(data, as_, ae)
            if len(kids) != 2 or kids[0][0] != 0x06:
                raise SignatureError("bad attribute in a Name")
            oid = _oid(data[kids[0][1]:kids[0][2]])
            value = data[kids[1][1]:kids[1][2]].decode("utf-8", "replace")
            out.append(f"{_NAMES.get(oid, oid)}={value}")
    return ", ".join(out)


def _expect(data: bytes, el: tuple[int, int, int], tag: int, what: str) -> tuple[int, int]:
    if el[0] != tag:
        raise SignatureError(f"{what}: DER tag 0x{el[0]:02x}, want 0x{tag:02x}")
    return el[1], el[2]


def parse_signer(pkcs7: bytes) -> Signer:
    """The first SignerInfo of a CMS SignedData (what sign-file writes)."""
    s, e = _expect(pkcs7, _tlv(pkcs7, 0), 0x30, "ContentInfo")
    kids = _children(pkcs7, s, e)
    if len(kids) < 2 or _oid(pkcs7[kids[0][1]:kids[0][2]]) != "1.2.840.113549.1.7.2":
        raise SignatureError("not a PKCS#7 SignedData")
    s, e = _expect(pkcs7, kids[1], 0xA0, "content")
    s, e = _expect(pkcs7, _tlv(pkcs7, s), 0x30, "SignedData")
    signed = _children(pkcs7, s, e)
    sets = [k for k in signed if k[0] == 0x31]
    if len(sets) < 2:
        raise SignatureError("SignedData without signerInfos")
    infos = _children(pkcs7, sets[-1][1], sets[-1][2])
    if not infos:
        raise SignatureError("no SignerInfo")
    info = _children(pkcs7, infos[0][1], infos[0][2])
    if len(info) < 3:
        raise SignatureError("short SignerInfo")
    sid, digest = info[1], info[2]
    issuer = serial = key_id = ""
    if sid[0] == 0x30:  # IssuerAndSerialNumber
        name, number = _children(pkcs7, sid[1], sid[2])[:2]
        issuer = _name(pkcs7, name[1], name[2])
        serial = pkcs7[number[1]:number[2]].hex()
    elif sid[0] == 0x80:  # [0] SubjectKeyIdentifier
        key_id = pkcs7[sid[1]:sid[2]].hex()
    else:
        raise SignatureError(f"unknown signer identifier (DER tag 0x{sid[0]:02x})")
    alg = _children(pkcs7, digest[1], digest[2])
    hash_name = _HASHES.get(_oid(pkcs7[alg[0][1]:alg[0][2]]), "unknown") if alg else "unknown"
    return Signer(issuer, serial.lstrip("0") or "0" if serial else "", key_id, hash_name)


def cert_id(cert_der: bytes) -> tuple[str, str]:
    """(issuer, serial hex) of an X.509 certificate."""
    s, e = _expect(cert_der, _tlv(cert_der, 0), 0x30, "Certificate")
    s, e = _expect(cert_der, _tlv(cert_der, s), 0x30, "TBSCertificate")
    kids = _children(cert_der, s, e)
    if kids and kids[0][0] == 0xA0:
        kids = kids[1:]
    if len(kids) < 3:
        raise SignatureError("short TBSCertificate")
    serial = cert_der[kids[0][1]:kids[0][2]].hex().lstrip("0") or "0"
    return _name(cert_der, kids[2][1], kids[2][2]), serial


def _pem(der: bytes) -> str:
    b64 = base64.b64encode(der).decode()
    body = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def load_cert_der(path: Path) -> bytes:
    """A certificate file, PEM or DER, as DER."""
    raw = path.read_bytes()
    begin, end = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"
    if begin not in raw:
        der = raw
    else:
        body = raw.split(begin, 1)[1].split(end, 1)[0]
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except ValueError as e:
            raise SignatureError(f"{path}: bad PEM certificate: {e}") from e
    if not der.startswith(b"\x30"):
        raise SignatureError(f"{path}: not an X.509 certificate (PEM or DER)")
    return der


# --------------------------------------------------------------------------- modules


def trailer(data: bytes) -> tuple[int, int, int]:
    """(where the signature starts, its id_type, where it ends) of a signed
    module's trailer; (len(data), -1, len(data)) for an unsigned one."""
    if not data.endswith(SIG_MAGIC):
        return len(data), -1, len(data)
    end = len(data) - len(SIG_MAGIC) - _SIG_STRUCT.size
    if end < 0:
        raise SignatureError("truncated module signature trailer")
    _algo, _hash, id_type, _signer_len, _key_id_len, sig_len = _SIG_STRUCT.unpack_from(data, end)
    if sig_len > end:
        raise SignatureError(f"module signature of {sig_len} bytes is longer than the file")
    return end - sig_len, id_type, end


def split(data: bytes) -> Signature | None:
    """The module's signature, or None if it is unsigned."""
    start, id_type, end = trailer(data)
    if id_type == -1:
        return None
    if id_type != _PKEY_ID_PKCS7:
        raise SignatureError(f"unsupported module signature (id_type {id_type}, "
                             f"{end - start} bytes)")
    pkcs7 = data[start:end]
    return Signature(data[:start], pkcs7, parse_signer(pkcs7))


def verify(sig: Signature, cert: Path) -> tuple[bool, str]:
    """Was the module signed by CERT's key? (openssl checks the signature itself)."""
    der = load_cert_der(cert)
    issuer, serial = cert_id(der)
    s = sig.signer
    if s.serial and (s.issuer, s.serial) != (issuer, serial):
        return False, f"signed by {s.describe()}, not {issuer} (serial {serial})"
    openssl = shutil.which("openssl")
    if openssl is None:
        return False, "cannot verify the signature: openssl is not installed"
    with tempfile.TemporaryDirectory(prefix="vpsnet-modsig-") as tmp:
        t = Path(tmp)
        (t / "sig").write_bytes(sig.pkcs7)
        (t / "content").write_bytes(sig.content)
        (t / "cert").write_text(_pem(der))
        proc = subprocess.run(
            [openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", str(t / "sig"),
             "-content", str(t / "content"), "-certfile", str(t / "cert"), "-nointern",
             "-noverify", "-out", "/dev/null"],
            capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        why = proc.stderr.strip().splitlines()[-1:] or ["failed"]
        return False, f"signature does not verify with {cert}: {why[0]}"
    return True, f"signature verifies with {cert} ({issuer})"
