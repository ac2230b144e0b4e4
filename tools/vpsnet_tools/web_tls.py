"""TLS server contexts for vpsnet-exporter: from the web config's tls_server_config
or from the older --tls-cert/--tls-key flags. Imported by web_config and exporter_server."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

CLIENT_AUTH = {
    "": ssl.CERT_NONE,
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# exporter-toolkit types Python's ssl module cannot do (ask for a certificate without
# verifying it)
CLIENT_AUTH_UNSUPPORTED = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}

# bad(where, message): the caller's error, naming its file and the field
Bad = Callable[[str, str], Exception]


def _server_context(certfile: str, keyfile: str | None,
                    minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
                    maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """The one place a server context is made: both ways in share it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


@contextlib.contextmanager
def _loading(bad: Bad, where: str, what: str) -> Iterator[None]:
    """A certificate or key the ssl module refuses, as the caller's one-line error."""
    try:
        yield
    except (ssl.SSLError, OSError) as e:
        raise bad(where, f"{what}: {getattr(e, 'reason', None) or e}") from None


def _verify_mode(tls: dict[str, str], bad: Bad) -> ssl.VerifyMode:
    auth = tls.get("client_auth_type", "")
    if auth in CLIENT_AUTH_UNSUPPORTED:
        raise bad("tls_server_config.client_auth_type",
                  f"{auth!r} is not supported by vpsnet-exporter (it cannot ask for a "
                  "certificate without verifying it): use VerifyClientCertIfGiven or "
                  "RequireAndVerifyClientCert")
    if auth not in CLIENT_AUTH:
        raise bad("tls_server_config.client_auth_type",
                  f"{auth!r} is not one of {', '.join(k for k in CLIENT_AUTH if k)}")
    verify = CLIENT_AUTH[auth]
    if verify != ssl.CERT_NONE and not tls.get("client_ca_file"):
        raise bad("tls_server_config.client_ca_file", f"needed with client_auth_type {auth}")
    if verify == ssl.CERT_NONE and tls.get("client_ca_file"):
        raise bad("tls_server_config.client_auth_type",
                  "client_ca_file given without a client_auth_type that verifies")
    return verify


def _versions(tls: dict[str, str], bad: Bad) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        v = tls.get(key, default)
        if v not in TLS_VERSIONS:
            raise bad(f"tls_server_config.{key}", f"{v!r} is not one of TLS12, TLS13")
        versions[key] = TLS_VERSIONS[v]
    if versions["min_version"] > versions["max_version"]:
        raise bad("tls_server_config.min_version", "is above max_version")
    return versions["min_version"], versions["max_version"]


def tls_context_from_config(tls: dict[str, str], base: Path, bad: Bad) -> ssl.SSLContext:
    """tls_server_config (its values already checked to be strings): file names
    relative to BASE; every problem raised as bad(field, message)."""

    def file(key: str) -> str:
        p = base / tls[key]
        if not p.is_file():
            raise bad(f"tls_server_config.{key}", f"{str(p)!r}: no such file")
        return str(p)

    for key in ("cert_file", "key_file"):
        if not tls.get(key):
            raise bad(f"tls_server_config.{key}", "missing (cert_file and key_file are needed)")
    verify = _verify_mode(tls, bad)
    minimum, maximum = _versions(tls, bad)
    cert, key = file("cert_file"), file("key_file")
    with _loading(bad, "tls_server_config.cert_file", f"{cert!r} with key_file {key!r}"):
        ctx = _server_context(cert, key, minimum, maximum)
    if verify != ssl.CERT_NONE:
        ca = file("client_ca_file")
        with _loading(bad, "tls_server_config.client_ca_file", repr(ca)):
            ctx.load_verify_locations(cafile=ca)
        ctx.verify_mode = verify
    return ctx


def tls_context_from_files(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """--tls-cert/--tls-key (the older flags): TLS 1.2+, no client certificates."""
    return _server_context(certfile, keyfile)
