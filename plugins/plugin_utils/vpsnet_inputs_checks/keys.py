# SPDX-License-Identifier: GPL-2.0-only
"""Checks of key material: OpenPGP public keys (armored or binary, parsed down to
their packets; secret keys refused) and PEM certificates. Imported by dispatch.py."""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from typing import Any

from .rules import Errors, control_char, show, string_verdict, type_name

KEY_FILE_MAX = 1 << 20

# OpenPGP packet tags (RFC 9580 section 5)
TAG_SECRET_KEY, TAG_PUBLIC_KEY, TAG_SECRET_SUBKEY = 5, 6, 7
ARMOR_RE = re.compile(r"-----(BEGIN|END) PGP ([A-Z ,/0-9]+)-----")
PEM_RE = re.compile(r"-----(BEGIN|END) ([A-Z0-9 ]+)-----")


def crc24(data: bytes) -> int:
    """The CRC-24 of an ASCII-armor checksum line (RFC 9580 section 6.1)."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _bit in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def openpgp_packets(data: bytes) -> list[tuple[int, int]]:
    """(tag, body length) of every packet of an OpenPGP stream; ValueError when
    a header is malformed or a body runs past the end."""
    out: list[tuple[int, int]] = []
    pos = 0
    while pos < len(data):
        head = data[pos]
        pos += 1
        if not head & 0x80:
            raise ValueError(f"byte {pos - 1} is not a packet header")
        if head & 0x40:  # new format
            tag = head & 0x3F
            if pos >= len(data):
                raise ValueError("truncated packet length")
            first = data[pos]
            if first < 192:
                length, pos = first, pos + 1
            elif first < 224:
                if pos + 1 >= len(data):
                    raise ValueError("truncated packet length")
                length, pos = ((first - 192) << 8) + data[pos + 1] + 192, pos + 2
            elif first == 255:
                if pos + 4 >= len(data):
                    raise ValueError("truncated packet length")
                length, pos = int.from_bytes(data[pos + 1:pos + 5], "big"), pos + 5
            else:
                raise ValueError("partial body lengths do not occur in keys")
        else:
            tag, kind = (head >> 2) & 0x0F, head & 0x03
            if kind == 3:
                raise ValueError("indeterminate packet length")
            size = (1, 2, 4)[kind]
            if pos + size > len(data):
                raise ValueError("truncated packet length")
            length, pos = int.from_bytes(data[pos:pos + size], "big"), pos + size
        if tag == 0:
            raise ValueError("packet tag 0 is reserved")
        if pos + length > len(data):
            raise ValueError(f"packet (tag {tag}) runs past the end")
        if tag in (TAG_PUBLIC_KEY, 14) and (length < 1 or data[pos] not in (4, 5, 6)):
            raise ValueError(f"key packet (tag {tag}) of unknown version")
        out.append((tag, length))
        pos += length
    return out


def _dearmor(text: str) -> tuple[str, bytes]:
    """(armor label, decoded bytes) of exactly one ASCII-armored block."""
    lines = [line.rstrip(" \t\r") for line in text.strip().split("\n")]
    if len(lines) < 3:
        raise ValueError("too short for an ASCII-armored block")
    begin, end = ARMOR_RE.fullmatch(lines[0]), ARMOR_RE.fullmatch(lines[-1])
    if not begin or begin.group(1) != "BEGIN" or not end or end.group(1) != "END" \
            or begin.group(2) != end.group(2):
        raise ValueError("not one -----BEGIN PGP ...----- / -----END PGP ...----- block")
    body = lines[1:-1]
    index = 0
    while index < len(body) and body[index]:  # armor headers, up to the blank line
        if ":" not in body[index]:
            raise ValueError(f"bad armor header line {body[index]!r}")
        index += 1
    body = body[index + 1:] if index < len(body) else []
    checksum = None
    if body and body[-1].startswith("="):
        checksum = body.pop()
    if not body or any(not re.fullmatch(r"[A-Za-z0-9+/=]{1,128}", line) for line in body):
        raise ValueError("the armored body is not base64")
    try:
        data = base64.b64decode("".join(body), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"the armored body is not base64 ({exc})") from None
    if checksum is not None:
        try:
            crc = int.from_bytes(base64.b64decode(checksum[1:], validate=True), "big")
        except (binascii.Error, ValueError):
            raise ValueError("bad armor checksum line") from None
        if crc != crc24(data):
            raise ValueError("the armor checksum does not match")
    return begin.group(2), data


# Written split, so that no file here holds a key header's text.
SECRET_ARMOR = "PRIVATE " + "KEY"


def openpgp_key_error(data: bytes | str) -> str:
    """Why DATA (armored text or binary) is not an OpenPGP public key
    (certificate, or keyring of them); '' when it is."""
    label = "binary"
    if isinstance(data, str) or data[:1] == b"-" or data.lstrip()[:5] == b"-----":
        text = data if isinstance(data, str) else data.decode("ascii", "replace")
        if SECRET_ARMOR in text:
            return "it is a PRIVATE key block: only the public key may be installed"
        try:
            label, data = _dearmor(text)
        except ValueError as exc:
            return f"not an ASCII-armored OpenPGP key ({exc})"
        if label != "PUBLIC KEY BLOCK":
            return f"armor says {label!r}, not 'PUBLIC KEY BLOCK'"
    try:
        packets = openpgp_packets(data)
    except ValueError as exc:
        return f"not an OpenPGP key ({label}: {exc})"
    tags = [tag for tag, _body in packets]
    if TAG_SECRET_KEY in tags or TAG_SECRET_SUBKEY in tags:
        return "it holds SECRET key material: only the public key may be installed"
    if not tags or tags[0] != TAG_PUBLIC_KEY:
        return f"not an OpenPGP public key (first packet tag {tags[0] if tags else 'none'}, want 6)"
    return ""


def check_openpgp_public_key(name: str, value: Any, *, allow_empty: bool = False) -> Errors:
    """ASCII-armored (or binary, as bytes) OpenPGP public key; never a secret key."""
    if allow_empty and value in ("", b""):
        return []
    if isinstance(value, str):
        if len(value) > KEY_FILE_MAX:
            return [f"{name}: {len(value)} characters is too long for a key"]
        bad = control_char(value.replace("\n", "").replace("\r", "").replace("\t", ""))
        if bad is not None:
            return [f"{name}={show(value)} contains a control character"]
    elif not isinstance(value, bytes):
        return [f"{name}={show(value)} is not key text ({type_name(value)})"]
    error = openpgp_key_error(value)
    return [f"{name}={show(value)}: {error}"] if error else []


def check_openpgp_public_key_file(name: str, value: Any, *, allow_empty: bool = False) -> Errors:
    """The path of a controller file holding an OpenPGP public key (armored or binary)."""
    verdict = string_verdict(name, value, 4096, allow_empty)
    if verdict is not None:
        return verdict
    if not os.path.isabs(value):
        return [f"{name}={show(value)} is not found on the controller (give an absolute path, "
                "or a file in the role's or the playbook's files/)"]
    try:
        with open(value, "rb") as handle:
            data = handle.read(KEY_FILE_MAX + 1)
    except OSError as exc:
        return [f"{name}={show(value)} cannot be read on the controller ({exc.strerror})"]
    if len(data) > KEY_FILE_MAX:
        return [f"{name}={show(value)} is larger than {KEY_FILE_MAX} bytes: not a key"]
    reason = openpgp_key_error(data)
    return [f"{name}={show(value)}: {reason}"] if reason else []


def check_pem(name: str, value: Any, *, labels: Sequence[str] = ("CERTIFICATE",),
              allow_empty: bool = False) -> Errors:
    """PEM text of blocks with only LABELS (a certificate chain by default); a
    private-key block is refused unless LABELS names it."""
    if allow_empty and value == "":
        return []
    if not isinstance(value, str):
        return [f"{name}={show(value)} is not PEM text ({type_name(value)})"]
    lines = [line.rstrip(" \t\r") for line in value.strip().split("\n")]
    blocks = 0
    label = None
    for line in lines:
        match = PEM_RE.fullmatch(line)
        if match:
            if match.group(1) == "BEGIN" and label is None:
                label = match.group(2)
                if label not in labels:
                    what = "a PRIVATE key" if "PRIVATE" in label else repr(label)
                    return [f"{name}: holds {what} block, want {' or '.join(labels)}"]
                continue
            if match.group(1) == "END" and match.group(2) == label:
                label, blocks = None, blocks + 1
                continue
            return [f"{name}={show(value)}: unbalanced PEM block markers"]
        if label is None or not re.fullmatch(r"[A-Za-z0-9+/=]{1,76}", line):
            return [f"{name}={show(value)} is not PEM ({' or '.join(labels)})"]
    if label is not None or blocks == 0:
        return [f"{name}={show(value)} is not PEM ({' or '.join(labels)})"]
    return []
