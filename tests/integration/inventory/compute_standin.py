"""A stand-in for Google's Compute API on 127.0.0.1 for the gcp_compute inventory
test: an HTTP proxy that tunnels only www.googleapis.com:443 (through a test CA the
client trusts) to a server of aggregated instance lists; any other target is
refused and recorded, so a test run fails closed instead of leaving the machine."""

from __future__ import annotations

import datetime
import json
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

API_HOST = "www.googleapis.com"
AGGREGATED = re.compile(r"/compute/v1/projects/([a-z][-a-z0-9]*)/aggregated/instances")
FILTER_TERM = re.compile(r"([A-Za-z][\w.]*) = ([\w.-]+)")


def write_test_ca(dest: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for API_HOST it signed: (ca.pem, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vpsnet test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(hours=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                       False, False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, API_HOST)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(API_HOST)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = dest / "ca.pem", dest / "api-cert.pem", dest / "api-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def field(instance: dict[str, Any], path: str) -> Any:
    value: Any = instance
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def matches(instance: dict[str, Any], query: str) -> bool:
    """The API's filter for the one form the plugin sends: `a = x` or `(a = x) (b = y)`
    (AND); anything else raises ValueError."""
    terms = re.findall(r"\(([^()]*)\)", query) or [query]
    if len(terms) > 1 and " ".join(f"({t})" for t in terms) != query:
        raise ValueError(f"unsupported filter {query!r}")
    parsed = [FILTER_TERM.fullmatch(t.strip()) for t in terms]
    if not all(parsed):
        raise ValueError(f"unsupported filter {query!r}")
    return all(str(field(instance, m.group(1))) == m.group(2) for m in parsed if m)


class ComputeApi(BaseHTTPRequestHandler):
    """The API inside a tunnel: GET .../projects/P/aggregated/instances, one zone a page."""
    protocol_version = "HTTP/1.1"
    server: StandIn

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.server.served.append({"path": url.path, **query,
                                   "authorization": self.headers.get("Authorization", "")})
        project = AGGREGATED.fullmatch(url.path)
        if self.headers.get("Host") != API_HOST or not project or \
                project.group(1) not in self.server.projects:
            self.reply(404, {"error": {"code": 404, "errors": [{"message": "not found"}]}})
            return
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            self.reply(401, {"error": {"code": 401, "errors": [{"message": "bad token"}]}})
            return
        zones = sorted(self.server.zones)
        page = int(query.get("pageToken", "0"))
        try:
            listed = [i for i in self.server.zones[zones[page]]
                      if matches(i, query.get("filter", ""))] if "filter" in query else \
                self.server.zones[zones[page]]
        except ValueError as e:
            self.reply(400, {"error": {"code": 400, "errors": [{"message": str(e)}]}})
            return
        entry = {"instances": listed} if listed else {"warning": {"code": "NO_RESULTS_ON_PAGE"}}
        body: dict[str, Any] = {"kind": "compute#instanceAggregatedList",
                                "items": {f"zones/{zones[page]}": entry}}
        if page + 1 < len(zones):
            body["nextPageToken"] = str(page + 1)
        self.reply(200, body)


class Proxy(BaseHTTPRequestHandler):
    """What HTTP(S)_PROXY points at: CONNECT API_HOST:443 is tunnelled to ComputeApi;
    every other request is refused (403) and recorded."""
    server: StandIn

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def refuse(self) -> None:
        self.server.refused.append(f"{self.command} {self.path}")
        self.send_error(403, "the test stand-in only tunnels to " + API_HOST)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = refuse

    def do_CONNECT(self) -> None:
        if self.path != f"{API_HOST}:443":
            self.refuse()
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        try:
            tunnel = self.server.tls.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.server.refused.append(f"TLS with the client failed: {e}")
            return
        try:
            ComputeApi(tunnel, self.client_address, self.server)
        finally:
            tunnel.close()


class StandIn(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, zones: dict[str, list[dict[str, Any]]], projects: list[str],
                 token: str, cert: Path, key: Path) -> None:
        super().__init__(("127.0.0.1", 0), Proxy)
        self.zones, self.projects, self.token = zones, projects, token
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(cert, key)
        self.served: list[dict[str, str]] = []
        self.refused: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def compute_standin(tmp: Path, zones: dict[str, list[dict[str, Any]]], projects: list[str],
                    token: str) -> Iterator[tuple[StandIn, Path]]:
    """The stand-in serving ZONES' instances for PROJECTS to TOKEN, and the CA bundle
    its certificate verifies with; always shut down."""
    ca, cert, key = write_test_ca(tmp)
    server = StandIn(zones, projects, token, cert, key)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, ca
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
