"""Fake cloud metadata services: AWS IMDSv2 and GCP, one per guest.

Semantics follow the real services closely enough that detection code
written against them behaves the same in production:
- AWS: PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds
  (1..21600) returns a token; every GET needs X-aws-ec2-metadata-token
  with a valid, unexpired token, else 401 (IMDSv1 is disabled, as with
  HttpTokens=required). Requests carrying X-Forwarded-For are refused.
- GCP: /computeMetadata/v1/... needs `Metadata-Flavor: Google`, else 403;
  answers carry `Metadata-Flavor: Google`.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO

AWS_TOKEN_TTL_MAX = 21600


@dataclass(frozen=True)
class Identity:
    """What a cloud's metadata service says about one instance."""

    cloud: str
    name: str
    region: str
    zone: str
    instance_type: str
    instance_id: str
    project: str = "vpsnet-lab"
    project_number: str = "424242424242"


@dataclass
class _TokenStore:
    clock: Callable[[], float] = time.monotonic
    tokens: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = self.clock() + ttl
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self.lock:
            expiry = self.tokens.get(token)
        return expiry is not None and self.clock() < expiry


def aws_documents(ident: Identity) -> dict[str, str]:
    """Paths under /latest/ and their bodies."""
    doc = {
        "accountId": "123456789012",
        "architecture": "x86_64",
        "availabilityZone": ident.zone,
        "imageId": "ami-0vpsnetlab000000",
        "instanceId": ident.instance_id,
        "instanceType": ident.instance_type,
        "privateIp": "10.0.2.15",
        "region": ident.region,
        "version": "2017-09-30",
    }
    meta = {
        "ami-id": doc["imageId"],
        "hostname": f"{ident.name}.{ident.region}.compute.internal",
        "instance-id": ident.instance_id,
        "instance-type": ident.instance_type,
        "local-ipv4": doc["privateIp"],
        "placement/availability-zone": ident.zone,
        "placement/region": ident.region,
    }
    paths = {f"meta-data/{k}": v for k, v in meta.items()}
    paths["meta-data/placement/"] = "availability-zone\nregion"
    top = sorted({k.split("/")[0] + ("/" if "/" in k else "") for k in meta})
    paths["meta-data/"] = "\n".join(top)
    paths["dynamic/instance-identity/document"] = json.dumps(doc, indent=2)
    return paths


def gcp_documents(ident: Identity) -> dict[str, str]:
    """Paths under /computeMetadata/v1/ and their bodies."""
    proj = f"projects/{ident.project_number}"
    inst = {
        "id": ident.instance_id,
        "name": ident.name,
        "hostname": f"{ident.name}.{ident.zone}.c.{ident.project}.internal",
        "zone": f"{proj}/zones/{ident.zone}",
        "machine-type": f"{proj}/machineTypes/{ident.instance_type}",
    }
    paths = {f"instance/{k}": v for k, v in inst.items()}
    paths["instance/"] = "\n".join(sorted(inst))
    paths["project/project-id"] = ident.project
    paths["project/numeric-project-id"] = ident.project_number
    return paths


class _Handler(BaseHTTPRequestHandler):
    server: MetadataServer
    protocol_version = "HTTP/1.1"
    server_version = "vpsnet-lab-metadata"

    def log_message(self, format: str, *args: object) -> None:
        if self.server.log is not None:
            self.server.log.write(f"{self.address_string()} {format % args}\n")
            self.server.log.flush()

    def _send(self, code: int, body: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def do_PUT(self) -> None:
        self._drain()
        if self.server.ident.cloud != "aws" or self.path != "/latest/api/token":
            self._send(404 if self.server.ident.cloud == "aws" else 405, "Not Found\n")
            return
        if "X-Forwarded-For" in self.headers:
            self._send(403, "Forbidden\n")
            return
        raw = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        try:
            ttl = int(raw)
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= AWS_TOKEN_TTL_MAX:
            self._send(400, "Bad Request\n")
            return
        token = self.server.tokens.issue(ttl)
        self._send(200, token, {"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})

    def do_GET(self) -> None:
        self._drain()
        if self.server.ident.cloud == "aws":
            self._get_aws()
        else:
            self._get_gcp()

    def _get_aws(self) -> None:
        if not self.path.startswith("/latest/"):
            self._send(404, "Not Found\n")
            return
        if not self.server.tokens.valid(self.headers.get("X-aws-ec2-metadata-token")):
            self._send(401, "Unauthorized\n")
            return
        body = self.server.documents.get(self.path.removeprefix("/latest/"))
        if body is None:
            self._send(404, "Not Found\n")
        else:
            self._send(200, body)

    def _get_gcp(self) -> None:
        flavor = {"Metadata-Flavor": "Google"}
        path, _, query = self.path.partition("?")
        if not path.startswith("/computeMetadata/v1/"):
            self._send(404, "Not Found\n", flavor)
            return
        if "X-Forwarded-For" in self.headers or self.headers.get("Metadata-Flavor") != "Google":
            self._send(403, "Missing required header: Metadata-Flavor\n", flavor)
            return
        key = path.removeprefix("/computeMetadata/v1/")
        if key == "instance/" and "recursive=true" in query:
            inst = {
                k.removeprefix("instance/"): v
                for k, v in self.server.documents.items()
                if k.startswith("instance/") and not k.endswith("/")
            }
            self._send(200, json.dumps(inst), {**flavor, "Content-Type": "application/json"})
            return
        body = self.server.documents.get(key)
        if body is None:
            self._send(404, "Not Found\n", flavor)
        else:
            self._send(200, body, flavor)


class MetadataServer(ThreadingHTTPServer):
    """One instance's metadata service on a host address."""

    daemon_threads = True

    def __init__(self, ident: Identity, host: str = "127.0.0.1", port: int = 0,
                 log: IO[str] | None = None) -> None:
        if ident.cloud not in ("aws", "gcp"):
            raise ValueError(f"unknown cloud {ident.cloud!r}: expected aws or gcp")
        self.ident = ident
        self.tokens = _TokenStore()
        self.documents = aws_documents(ident) if ident.cloud == "aws" else gcp_documents(ident)
        self.log = log
        if ":" in host:  # an IPv6 literal such as ::1 (tests of the IPv6 endpoint)
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name=f"metadata-{self.ident.name}",
                                  daemon=True)
        thread.start()
        return thread
