# SPDX-License-Identifier: GPL-2.0-only
"""The one set of input checks every vpsnet role runs first, on the controller.

Each role's tasks/validate.yml hands a list of specs to the `vpsnet_inputs_check`
filter, one per variable:

    {name: vpsnet_repo_suite, value: "{{ vpsnet_repo_suite }}", check: identifier}

and fails before its first task that touches a host when the list of errors it
returns is not empty. Every error names the variable and shows the bad value
(repr, so control characters are escaped; truncated). Plain typed Python with
no Ansible import: unit-tested in-process (tests/unit/roles/test_vpsnet_inputs*.py).

Rules shared by every check: full-string matching only (re.fullmatch: `$`
accepts a trailing newline), no control characters in any string (C0, DEL,
C1, line/paragraph separators, surrogates), numbers finite and in a range (a
bool is not a number), a list is a real list (a string is not one) of bounded
length.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import itertools
import math
import os
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Errors = list[str]

SHOW_MAX = 72
INT_LIMIT = 2**63 - 1
NUMBER_LIMIT = 1e15
STRING_MAX = 256
LIST_MAX = 64
KEY_FILE_MAX = 1 << 20

# Debian/RPM upstream version as vpsnet uses it, with an optional Debian revision:
# 1.0.0, 10.2, 1.1.0~rc1, 2.0.0+git3, 1.0.0-1
VERSION_RE = re.compile(
    r"[0-9]{1,9}(\.[0-9]{1,9}){1,3}([~+][0-9A-Za-z.~+]{1,64})?(-[0-9A-Za-z.~+]{1,32})?")
IDENTIFIER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
INT_RE = re.compile(r"[+-]?[0-9]{1,19}")
NUMBER_RE = re.compile(r"[+-]?([0-9]{1,16}(\.[0-9]{0,12})?|\.[0-9]{1,12})")
BATCH_PERCENT_RE = re.compile(r"(100|[1-9][0-9]?)%")
# Characters a path may hold: nothing a shell, a systemd unit (% specifiers,
# quotes, whitespace), an apt/dnf/sysctl/modprobe file or a glob reads specially.
PATH_RE = re.compile(r"/[A-Za-z0-9_.+,@=:~/-]*")
HOSTNAME_RE = re.compile(
    r"(?=.{1,253}\.?\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
IFNAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@+-]{0,14}")
URL_CHARS_RE = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+")
URL_RE = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<rest>[/?#].*)?", re.S)
BOOL_STRINGS = {"true": True, "yes": True, "on": True, "1": True,
                "false": False, "no": False, "off": False, "0": False}

# OpenPGP packet tags (RFC 9580 section 5)
TAG_SECRET_KEY, TAG_PUBLIC_KEY, TAG_SECRET_SUBKEY = 5, 6, 7
ARMOR_RE = re.compile(r"-----(BEGIN|END) PGP ([A-Z ,/0-9]+)-----")
PEM_RE = re.compile(r"-----(BEGIN|END) ([A-Z0-9 ]+)-----")


class SpecError(ValueError):
    """A role's spec is wrong (a programming error, still reported in one line)."""


def show(value: Any) -> str:
    """The value as an error shows it: repr (control characters escaped), truncated."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{_type(value)}>"
    return text if len(text) <= SHOW_MAX else text[: SHOW_MAX - 3] + "..."


def _type(value: Any) -> str:
    """The plain type name (Ansible wraps values in tagged subclasses of str, list...)."""
    for base in type(value).__mro__:
        if base.__module__ == "builtins" and base is not object:
            return base.__name__
    return type(value).__name__


def _num(number: float) -> str:
    """A number for a message: integral ones without a fraction, huge ones by size."""
    if isinstance(number, int) and number.bit_length() > 64:
        return f"<{number.bit_length()}-bit integer>"
    if isinstance(number, int) or (math.isfinite(number) and number == int(number)
                                   and abs(number) < 1e16):
        return str(int(number))
    return repr(number)


def control_char(text: str) -> int | None:
    """Index of the first control character (C0, DEL, C1, U+2028/2029, surrogate), or None."""
    for index, char in enumerate(text):
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029):
            return index
        if 0xD800 <= code <= 0xDFFF or unicodedata.category(char) in ("Zl", "Zp"):
            return index
    return None


def _string_base(name: str, value: Any, max_len: int, min_len: int) -> str | None:
    """Errors common to every string check, as one message (None: fine)."""
    if value is None:
        return f"{name} is not set"
    if not isinstance(value, str):
        return f"{name}={show(value)} is not a string ({_type(value)})"
    bad = control_char(value)
    if bad is not None:
        return f"{name}={show(value)} contains a control character ({value[bad]!r} at {bad})"
    if len(value) > max_len:
        return f"{name}={show(value)} is longer than {max_len} characters ({len(value)})"
    if len(value) < min_len:
        return f"{name}={show(value)} is empty" if min_len == 1 and not value else \
            f"{name}={show(value)} is shorter than {min_len} characters"
    return None


def check_string(name: str, value: Any, *, pattern: str | None = None, what: str = "",
                 min_len: int = 0, max_len: int = STRING_MAX, allow_empty: bool = True,
                 choices: Sequence[str] | None = None, numbers: bool = False) -> Errors:
    """A string without control characters, of bounded length; PATTERN (fully
    matched) or CHOICES when given. An empty string passes when ALLOW_EMPTY;
    with NUMBERS a finite int or float is read as its decimal text."""
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        parsed = parse_number(value, integer=False)
        if isinstance(parsed, str):
            return [f"{name}={show(value)} {parsed}"]
        value = str(value)
    if allow_empty and value == "":
        return []
    error = _string_base(name, value, max_len, max(min_len, 0 if allow_empty else 1))
    if error:
        return [error]
    if choices is not None and value not in choices:
        return [f"{name}={show(value)} is not a known {what or 'value'} "
                f"(one of {', '.join(map(str, choices))})"]
    if pattern is not None and not re.fullmatch(pattern, value):
        return [f"{name}={show(value)} is not {what or 'a value matching ' + pattern}"]
    return []


def check_choice(name: str, value: Any, *, choices: Sequence[Any], what: str = "") -> Errors:
    """One of CHOICES exactly (strings compared as they are: no stripping)."""
    if isinstance(value, bool) or value not in list(choices):
        listed = ", ".join(map(str, choices))
        if what:
            return [f"{name}={show(value)} is not a known {what} (one of {listed})"]
        return [f"{name}={show(value)} is not one of {listed}"]
    return []


def check_identifier(name: str, value: Any, *, pattern: str | None = None, what: str = "",
                     max_len: int = 64, allow_empty: bool = False) -> Errors:
    """A name: letters, digits, '_', '.', '-' (or PATTERN), no whitespace."""
    return check_string(name, value, pattern=pattern or IDENTIFIER_RE.pattern,
                        what=what or "a name (letters, digits, _ . -)", max_len=max_len,
                        allow_empty=allow_empty)


def check_bool(name: str, value: Any) -> Errors:
    """True/False, or a string Ansible's bool filter reads the same way."""
    if isinstance(value, bool):
        return []
    if isinstance(value, str) and value.lower() in BOOL_STRINGS:
        return []
    return [f"{name}={show(value)} is not a boolean (true or false)"]


def parse_number(value: Any, integer: bool) -> float | int | str:
    """The number VALUE holds, or why not (a str). Strings: plain decimal only
    (float() would take 'nan', 'inf', '1_0', ' 5')."""
    if isinstance(value, bool):
        return "is a boolean, not a number"
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return "is not a finite number"
        if integer and value != int(value):
            return "is not a whole number"
        return int(value) if integer else value
    if isinstance(value, str):
        if integer:
            if INT_RE.fullmatch(value):
                return int(value)
            if NUMBER_RE.fullmatch(value):
                return "is not a whole number"
            return "is not an integer"
        if NUMBER_RE.fullmatch(value):
            return float(value)
        return "is not a number"
    return f"is not a number ({_type(value)})"


def _bound(bound: Any) -> float | None:
    """A range bound from a spec (templated values may come as strings)."""
    if bound is None:
        return None
    parsed = parse_number(bound, integer=False)
    if isinstance(parsed, str):
        raise SpecError(f"range bound {bound!r} {parsed}")
    return int(parsed) if float(parsed).is_integer() else float(parsed)


def _range(name: str, number: float, minimum: Any, maximum: Any, greater_than: Any) -> Errors:
    minimum, maximum, greater_than = _bound(minimum), _bound(maximum), _bound(greater_than)
    lo = "" if minimum is None and greater_than is None else _num(
        greater_than if minimum is None else minimum)
    hi = "" if maximum is None else _num(maximum)
    bad = (minimum is not None and number < minimum) or (maximum is not None and number > maximum) \
        or (greater_than is not None and number <= greater_than)
    if not bad:
        return []
    if greater_than is not None and minimum is None:
        span = f"must be > {lo}" + (f" and <= {hi}" if hi else "")
        return [f"{name}={_num(number)} {span}"]
    return [f"{name}={_num(number)} is outside {lo}..{hi}"]


def check_int(name: str, value: Any, *, min: int | None = None,
              max: int | None = None, greater_than: int | None = None) -> Errors:
    """An integer (int, integral float, or a decimal string) in MIN..MAX."""
    parsed = parse_number(value, integer=True)
    if isinstance(parsed, str):
        return [f"{name}={show(value)} {parsed}"]
    hi = INT_LIMIT if max is None else max
    lo = -INT_LIMIT if min is None and greater_than is None else min
    return _range(name, parsed, lo, hi, greater_than)


def check_number(name: str, value: Any, *, min: float | None = None,
                 max: float | None = None,
                 greater_than: float | None = None) -> Errors:
    """A finite number (int, float, or a plain decimal string) in MIN..MAX
    (or above GREATER_THAN): no NaN, no infinity, no bool."""
    parsed = parse_number(value, integer=False)
    if isinstance(parsed, str):
        return [f"{name}={show(value)} {parsed}"]
    hi = NUMBER_LIMIT if max is None else max
    lo = -NUMBER_LIMIT if min is None and greater_than is None else min
    return _range(name, float(parsed), lo, hi, greater_than)


def _element_errors(name: str, value: Any, spec: Mapping[str, Any] | None) -> Errors:
    if not spec:
        return []
    spec = dict(spec)
    kind = spec.pop("check", "string")
    return run_check(kind, name, value, spec)


def check_list(name: str, value: Any, *, min_len: Any = 0, max_len: Any = LIST_MAX,
               elements: Mapping[str, Any] | None = None, unique: bool = False,
               max_joined: int | None = None, joiner: str = ",") -> Errors:
    """A real list (not a string, not a mapping) of MIN_LEN..MAX_LEN elements,
    each passing ELEMENTS (a spec without name/value); MAX_JOINED bounds the
    length of the elements joined with JOINER (a module parameter)."""
    if value is None:
        return [f"{name} is not set"]
    if not isinstance(value, list):
        return [f"{name}={show(value)} is not a list ({_type(value)})"]
    min_len, max_len = int(_bound(min_len) or 0), int(_bound(max_len) or 0)
    if len(value) > max_len:
        return [f"{name} has {len(value)} elements, more than the {max_len} it may have"]
    if len(value) < min_len:
        if not value:
            return [f"{name}={show(value)} must be a non-empty list"]
        return [f"{name}={show(value)} has fewer than {min_len} elements"]
    errors: Errors = []
    for index, item in enumerate(value):
        errors.extend(_element_errors(f"{name}[{index}]", item, elements))
    if unique and not errors:
        seen = [str(v) for v in value]
        dup = sorted({v for v in seen if seen.count(v) > 1})
        if dup:
            errors.append(f"{name} names {', '.join(map(show, dup))} more than once")
    if max_joined is not None and not errors:
        joined = joiner.join(str(v) for v in value)
        if len(joined) > max_joined:
            errors.append(f"{name}: {len(joined)} characters joined, more than {max_joined}")
    return errors


def check_dict(name: str, value: Any, *, max_len: int = LIST_MAX,
               keys: Mapping[str, Any] | None = None,
               values: Mapping[str, Any] | None = None,
               allowed_keys: Sequence[str] | None = None) -> Errors:
    """A mapping of at most MAX_LEN entries; each key passes KEYS (default: a
    string without control characters) and each value VALUES."""
    if not isinstance(value, Mapping):
        return [f"{name}={show(value)} is not a mapping ({_type(value)})"]
    if len(value) > max_len:
        return [f"{name} has {len(value)} entries, more than the {max_len} it may have"]
    errors: Errors = []
    for key, item in value.items():
        key_name = f"{name} key {show(key)}"
        key_spec = keys or {"check": "string", "allow_empty": False}
        errors.extend(_element_errors(key_name, key, key_spec))
        if allowed_keys is not None and key not in allowed_keys:
            errors.append(f"{key_name} is not one of {', '.join(allowed_keys)}")
        errors.extend(_element_errors(f"{name}[{show(key)}]", item, values))
    return errors


def check_path(name: str, value: Any, *, prefixes: Sequence[str] | None = None,
               suffix: str | None = None, allow_empty: bool = False,
               max_len: int = 1024) -> Errors:
    """An absolute path of plain characters (no whitespace, quotes, %, $, globs),
    without '.' or '..' components or '//' and, with PREFIXES, strictly under one of them."""
    if allow_empty and value == "":
        return []
    error = _string_base(name, value, max_len, 1)
    if error:
        return [error]
    if not PATH_RE.fullmatch(value):
        return [f"{name}={show(value)} is not an absolute path of plain characters "
                "(letters, digits, / _ . + , @ = : ~ -)"]
    parts = value.split("/")[1:]
    if any(p in (".", "..") for p in parts) or "//" in value:
        return [f"{name}={show(value)} has a '.', '..' or empty component"]
    if prefixes:
        under = [p for p in prefixes if value.startswith(p.rstrip("/") + "/")
                 and len(value) > len(p.rstrip("/")) + 1 and not value.endswith("/")]
        if not under:
            return [f"{name}={show(value)} is not a file under {' or '.join(prefixes)}"]
    if suffix is not None and not value.endswith(suffix):
        return [f"{name}={show(value)} does not end with {suffix}"]
    return []


def check_url(name: str, value: Any, *, schemes: Sequence[str] = ("http", "https"),
              allow_empty: bool = False, max_len: int = 2048) -> Errors:
    """SCHEME://authority/path with only URL characters (no whitespace or
    quotes); http(s) needs a host (and a port 1..65535 when given), file:// a path."""
    if allow_empty and value == "":
        return []
    error = _string_base(name, value, max_len, 1)
    if error:
        return [error]
    match = URL_RE.fullmatch(value)
    if not URL_CHARS_RE.fullmatch(value) or match is None:
        return [f"{name}={show(value)} is not a URL ({'/'.join(schemes)}://...)"]
    scheme, authority = match.group("scheme"), match.group("authority")
    if scheme not in schemes:
        return [f"{name}={show(value)}: scheme {scheme!r} is not one of {', '.join(schemes)}"]
    if scheme == "file":
        path = (match.group("rest") or "")
        if authority not in ("", "localhost") or check_path(name, path.rstrip("/") or "/"):
            return [f"{name}={show(value)} is not a file:// URL of an absolute plain path"]
        return []
    hostport = authority.rsplit("@", 1)[-1]
    host, port = hostport, ""
    if hostport.startswith("["):
        host, bracket, port = hostport[1:].partition("]")
        if not bracket:
            return [f"{name}={show(value)} has an unclosed '[' in its host"]
        port = port[1:] if port.startswith(":") else ("x" if port else "")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return [f"{name}={show(value)} has a bad IPv6 address {host!r}"]
    elif ":" in hostport:
        host, _, port = hostport.partition(":")
    if not host or (not hostport.startswith("[") and not HOSTNAME_RE.fullmatch(host)):
        return [f"{name}={show(value)} has no valid host"]
    if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return [f"{name}={show(value)} has a bad port {port!r}"]
    return []


def check_version(name: str, value: Any, *, allow_empty: bool = False) -> Errors:
    """A vpsnet release version such as 1.0.0, 1.1.0~rc1, 2.0.0+git3, 1.0.0-1."""
    if allow_empty and value == "":
        return []
    error = _string_base(name, value, 160, 1)
    if error:
        return [error]
    if not VERSION_RE.fullmatch(value):
        return [f"{name}={show(value)} is not a version string (like 1.0.0)"]
    return []


def check_address(name: str, value: Any, *, allow_empty: bool = False,
                  allow_hostname: bool = True) -> Errors:
    """An IPv4 or IPv6 address, or (ALLOW_HOSTNAME) a DNS name; never something
    that starts with '-' (an option to the command it is handed to)."""
    if allow_empty and value == "":
        return []
    error = _string_base(name, value, 253, 1)
    if error:
        return [error]
    try:
        ipaddress.ip_address(value)
        return []
    except ValueError:
        pass
    if allow_hostname and HOSTNAME_RE.fullmatch(value) and not value.replace(".", "").isdigit():
        return []
    what = "an IP address or a host name" if allow_hostname else "an IP address"
    return [f"{name}={show(value)} is not {what}"]


def check_ifname(name: str, value: Any) -> Errors:
    """A Linux network interface name (at most 15 characters, no '/' or whitespace)."""
    error = _string_base(name, value, 15, 1)
    if error:
        return [error]
    if not IFNAME_RE.fullmatch(value) or value in (".", ".."):
        return [f"{name}={show(value)} is not a network interface name"]
    return []


def check_regex(name: str, value: Any, *, max_len: int = 256) -> Errors:
    """A Python regular expression that compiles."""
    error = _string_base(name, value, max_len, 1)
    if error:
        return [error]
    try:
        re.compile(value)
    except (re.error, RecursionError, OverflowError) as exc:
        return [f"{name}={show(value)} is not a regular expression ({exc})"]
    return []


def check_batches(name: str, value: Any, *, max_len: int = 100,
                  max_count: int = 1_000_000) -> Errors:
    """Ansible serial batches: a non-empty list of host counts >= 1 or percentages 1%..100%."""
    if not isinstance(value, list):
        return [f"{name}={show(value)} is not a list ({_type(value)})"]
    if not value or len(value) > max_len:
        return [f"{name}={show(value)} must list 1 to {max_len} batches"]
    errors: Errors = []
    for index, item in enumerate(value):
        ok = (isinstance(item, int) and not isinstance(item, bool) and 1 <= item <= max_count) \
            or (isinstance(item, str) and bool(BATCH_PERCENT_RE.fullmatch(item)))
        if not ok:
            errors.append(f"{name}[{index}]={show(item)} is neither a host count 1..{max_count} "
                          "nor a percentage 1%..100%")
    return errors


def check_all_or_none(name: str, value: Any) -> Errors:
    """VALUE, a list of settings that go together: all set (non-empty) or none."""
    if not isinstance(value, list):
        raise SpecError(f"all_or_none for {name} needs a list of values")
    set_ = [bool(v) for v in value]
    if any(set_) and not all(set_):
        which = "both or neither" if len(value) == 2 else "all of them or none"
        return [f"{name}: set {which} (got {', '.join(show(v) for v in value)})"]
    return []


def check_one_of(name: str, value: Any) -> Errors:
    """VALUE, a list of settings of which exactly one must be set (non-empty)."""
    if not isinstance(value, list):
        raise SpecError(f"one_of for {name} needs a list of values")
    if sum(1 for v in value if v) != 1:
        return [f"{name}: set exactly one of them (got {', '.join(show(v) for v in value)})"]
    return []


def check_ordered(name: str, value: Any, *, msg: str = "") -> Errors:
    """VALUE, a list of numbers that must be strictly increasing (a value that
    is not a number is left to its own check)."""
    if not isinstance(value, list):
        raise SpecError(f"ordered for {name} needs a list of values")
    numbers = [parse_number(v, integer=False) for v in value]
    if any(isinstance(n, str) for n in numbers):
        return []
    if all(float(a) < float(b) for a, b in itertools.pairwise(numbers)):
        return []
    return [f"{name}: {msg or 'must increase'} (got {', '.join(_num(float(n)) for n in numbers)})"]


def check_relation(name: str, value: Any, *, msg: str = "") -> Errors:
    """A relation between settings the role computed (VALUE true: fine); MSG says what is wrong."""
    return [] if value is True else [f"{name}: {msg or 'not satisfied'}"]


# --- OpenPGP and PEM --------------------------------------------------------

def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
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
        if crc != _crc24(data):
            raise ValueError("the armor checksum does not match")
    return begin.group(2), data


# Written split, so that no file here holds a key header's text.
SECRET_ARMOR = "PRIVATE " "KEY"


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
    tags = [tag for tag, _ in packets]
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
        return [f"{name}={show(value)} is not key text ({_type(value)})"]
    error = openpgp_key_error(value)
    return [f"{name}={show(value)}: {error}"] if error else []


def check_openpgp_public_key_file(name: str, value: Any, *, allow_empty: bool = False) -> Errors:
    """The path of a controller file holding an OpenPGP public key (armored or binary)."""
    if allow_empty and value == "":
        return []
    error = _string_base(name, value, 4096, 1)
    if error:
        return [error]
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
        return [f"{name}={show(value)} is not PEM text ({_type(value)})"]
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


# --- dispatch ----------------------------------------------------------------

CHECKS: dict[str, Callable[..., Errors]] = {
    "string": check_string,
    "choice": check_choice,
    "identifier": check_identifier,
    "bool": check_bool,
    "int": check_int,
    "number": check_number,
    "list": check_list,
    "dict": check_dict,
    "path": check_path,
    "url": check_url,
    "version": check_version,
    "address": check_address,
    "ifname": check_ifname,
    "regex": check_regex,
    "batches": check_batches,
    "all_or_none": check_all_or_none,
    "one_of": check_one_of,
    "relation": check_relation,
    "ordered": check_ordered,
    "openpgp_public_key": check_openpgp_public_key,
    "openpgp_public_key_file": check_openpgp_public_key_file,
    "pem": check_pem,
}


def run_check(kind: Any, name: str, value: Any, options: Mapping[str, Any]) -> Errors:
    """One check by its name; a wrong spec is one error line, never a traceback."""
    func = CHECKS.get(kind) if isinstance(kind, str) else None
    if func is None:
        return [f"vpsnet_inputs: {name}: unknown check {show(kind)} (one of {', '.join(CHECKS)})"]
    try:
        return func(name, value, **dict(options))
    except (SpecError, TypeError) as exc:
        return [f"vpsnet_inputs: bad spec for {name}: {exc}"]
    except (RecursionError, OverflowError, ValueError, MemoryError) as exc:
        return [f"{name}={show(value)} cannot be checked ({type(exc).__name__})"]


def check(specs: Any, role: str = "") -> Errors:
    """Every error of SPECS, a list of {name, value, check, **options}
    (a mapping name -> spec works too); ROLE prefixes nothing, it only names a bad spec."""
    if isinstance(specs, Mapping):
        specs = [{"name": k, **v} if isinstance(v, Mapping) else v for k, v in specs.items()]
    if not isinstance(specs, list):
        return [f"vpsnet_inputs: {role or 'a role'} passed {_type(specs)}, "
                "not a list of specs"]
    errors: Errors = []
    for spec in specs:
        if not isinstance(spec, Mapping) or "name" not in spec or "check" not in spec:
            errors.append(f"vpsnet_inputs: {role or 'a role'}: bad spec {show(spec)}")
            continue
        options = {k: v for k, v in spec.items() if k not in ("name", "value", "check")}
        errors.extend(run_check(spec["check"], str(spec["name"]), spec.get("value"), options))
    return errors


def safe_filename(name: Any, max_len: int = 100) -> str:
    """NAME (an inventory host name) as one safe file name: only letters,
    digits, '.', '_' and '-', never hidden, '.' or '..'; a name that had to
    change gets a hash of the original, so two hosts never share a file."""
    text = str(name)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", text).lstrip(".-")
    if safe == text and 0 < len(safe) <= max_len:
        return safe
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{safe[: max_len - 13] or 'host'}-{digest}"


class FilterModule:
    """vpsnet_inputs filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "vpsnet_inputs_check": check,
            "vpsnet_inputs_safe_filename": safe_filename,
        }
