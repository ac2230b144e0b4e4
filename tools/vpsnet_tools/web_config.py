"""The exporter-toolkit web config (--web.config.file): read, checked whole, and
turned into a TLS context and a user table. Imported by exporter and its tests."""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vpsnet_tools.web_tls import Bad, tls_context_from_config

MAX_WEB_CONFIG_BYTES = 64 * 1024
TLS_KEYS = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
            "max_version")
# exporter-toolkit keys this exporter does not implement: refused, never silently ignored
TLS_KEYS_UNSUPPORTED = ("cert", "key", "client_ca", "cipher_suites", "curve_preferences",
                        "prefer_server_cipher_suites", "client_allowed_sans")
TOP_KEYS = ("tls_server_config", "basic_auth_users")
TOP_KEYS_UNSUPPORTED = ("http_server_config", "rate_limit")
BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
USER_NAME = re.compile(r"[^\x00-\x20\x7f:]{1,128}")  # no control chars, spaces or ':'


class WebConfigError(ValueError):
    """A bad web config: the message names the file and the field."""


@dataclass
class WebConfig:
    path: str = ""
    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash


def _escape(value: object) -> str:
    return repr(value) if isinstance(value, str) else repr(str(value))


def _field(key: str) -> str:
    """A key as it appears in a message: plain names plain, anything else escaped."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", key) else repr(key)


def _unique_key_loader() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader: Any, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value_node in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is not a string", key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} repeated", key_node.start_mark)
            seen.add(key)
        return dict(loader.construct_pairs(node, deep=deep))

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return Loader


def load_web_config(path: str, *, tls_from_flags: bool = False) -> WebConfig:
    """Read and check PATH completely (files, hashes, certificates) or raise WebConfigError.
    Relative file names are relative to PATH's directory (as in exporter-toolkit)."""

    def bad(where: str, msg: str) -> WebConfigError:
        return WebConfigError(f"web config {path}: {where}: {msg}" if where
                              else f"web config {path}: {msg}")

    doc = _read_document(path, bad)
    cfg = WebConfig(path=path)
    users = doc.get("basic_auth_users")
    if users is not None:
        cfg.users = _users(users, bad)
    tls = doc.get("tls_server_config")
    if tls is not None:
        if not isinstance(tls, dict):
            raise bad("tls_server_config", "must be a mapping")
        if tls_from_flags:
            raise bad("tls_server_config", "given together with --tls-cert: use one of them")
        _check_tls_fields(tls, bad)
        cfg.ssl_context = tls_context_from_config(tls, Path(path).parent, bad)
    return cfg


def _read_document(path: str, bad: Bad) -> dict[str, Any]:
    """PATH as a YAML mapping of known top-level keys (an empty file: {})."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_WEB_CONFIG_BYTES + 1)
    except OSError as e:
        raise bad("", f"cannot read: {e.strerror or e}") from None
    if len(raw) > MAX_WEB_CONFIG_BYTES:
        raise bad("", f"larger than {MAX_WEB_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise bad("", f"not UTF-8 (byte {e.start})") from None
    try:
        import yaml
    except ImportError:
        raise bad("", "needs PyYAML (python3-yaml)") from None
    try:
        doc = yaml.load(text, Loader=_unique_key_loader())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise bad(where, f"not valid YAML: {problem}") from None
    except RecursionError:
        raise bad("", "nested too deeply") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise bad("", f"must be a mapping, not {type(doc).__name__}")
    for key in doc:
        if key in TOP_KEYS_UNSUPPORTED:
            raise bad(key, "not supported by vpsnet-exporter")
        if key not in TOP_KEYS:
            raise bad(_field(key), f"unknown field (known: {', '.join(TOP_KEYS)})")
    return doc


def _users(users: object, bad: Bad) -> dict[str, bytes]:
    """basic_auth_users: user -> bcrypt hash, each checked."""
    if not isinstance(users, dict):
        raise bad("basic_auth_users", "must be a mapping of user: bcrypt hash")
    table: dict[str, bytes] = {}
    for user, hashed in users.items():
        if not USER_NAME.fullmatch(user):
            raise bad(f"basic_auth_users.{_field(user)}",
                      "user names have 1-128 characters, no ':', spaces or control "
                      "characters")
        if not isinstance(hashed, str) or not BCRYPT_HASH.fullmatch(hashed):
            raise bad(f"basic_auth_users.{_field(user)}",
                      f"{_escape(hashed)[:20]}... is not a bcrypt hash ($2y$10$ + 53 "
                      "characters; htpasswd -nBC 10 USER)")
        table[user] = hashed.encode()
    if table:
        try:
            import bcrypt  # noqa: F401
        except ImportError:
            raise bad("basic_auth_users", "needs the bcrypt module (python3-bcrypt)") from None
    return table


def _check_tls_fields(tls: dict[Any, Any], bad: Bad) -> None:
    """tls_server_config: known keys only, each a string without control characters."""
    for key, value in tls.items():
        where = f"tls_server_config.{_field(key)}"
        if key in TLS_KEYS_UNSUPPORTED:
            raise bad(where, "not supported by vpsnet-exporter")
        if key not in TLS_KEYS:
            raise bad(where, f"unknown field (known: {', '.join(TLS_KEYS)})")
        if not isinstance(value, str):
            raise bad(where, f"must be a string, not {type(value).__name__}")
        if any(ord(c) < 0x20 or c == "\x7f" for c in value):
            raise bad(where, f"{_escape(value)} has control characters")
