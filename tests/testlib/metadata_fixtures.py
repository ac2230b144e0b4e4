"""Fixtures for the role tests of every layer (a pytest plugin, named in
tests/conftest.py): the vpsnet_facts module and fake metadata services."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest
from ansible_collections.vpsnet.fleet.plugins.modules import vpsnet_facts

from testlib.vpsnet_facts_helpers import http_server, raw_http_server, trickle
from vpsnet_lab.metadata import Identity, MetadataServer


@pytest.fixture(scope="session")
def vf() -> ModuleType:
    """The vpsnet_facts module (plugins/modules/vpsnet_facts.py)."""
    return vpsnet_facts


AWS_IDENTITY = Identity(cloud="aws", name="n1", region="us-east-1", zone="us-east-1a",
                        instance_type="m5.large", instance_id="i-0abc")
GCP_IDENTITY = Identity(cloud="gcp", name="n2", region="us-central1", zone="us-central1-a",
                        instance_type="e2-standard-2", instance_id="4242424242424242")


class Recorder:
    """Every request a fake metadata server saw: (method, path, headers)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []


def _serve(ident: Identity, host: str = "127.0.0.1") -> Iterator[tuple[MetadataServer, Recorder]]:
    srv = MetadataServer(ident, host=host, port=0)
    recorder = Recorder()
    base = srv.RequestHandlerClass

    class Recording(base):  # type: ignore[misc,valid-type]
        def parse_request(self) -> bool:
            ok = bool(super().parse_request())
            if ok:
                recorder.requests.append((self.command, self.path, dict(self.headers)))
            return ok

    srv.RequestHandlerClass = Recording
    srv.start()
    try:
        yield srv, recorder
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def aws_server() -> Iterator[tuple[MetadataServer, Recorder]]:
    yield from _serve(AWS_IDENTITY)


@pytest.fixture
def gcp_server() -> Iterator[tuple[MetadataServer, Recorder]]:
    yield from _serve(GCP_IDENTITY)


@pytest.fixture
def aws6() -> Iterator[tuple[MetadataServer, Recorder]]:
    """The lab's fake IMDSv2 service listening on ::1 only."""
    yield from _serve(AWS_IDENTITY, host="::1")


@pytest.fixture
def closed_port() -> int:
    """A local port where nothing listens (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel does) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


@pytest.fixture
def dripping_port() -> Iterator[int]:
    """Answers 200 with a huge Content-Length, then drips one byte every 0.2 s."""
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            b"Metadata-Flavor: Google\r\nContent-Length: 100000\r\n\r\n")

    def drip(_method: str, _path: str, send: Callable[[bytes], None],
             stop: threading.Event) -> None:
        send(head)
        trickle(send, stop, b"x" * 100000, 0.2)

    with raw_http_server(drip) as port:
        yield port


def _tiny_server(status: int, body: str, headers: dict[str, str]) -> Iterator[int]:
    with http_server(lambda _method, _path: (status, headers, body.encode())) as port:
        yield port


@pytest.fixture
def html_port() -> Iterator[int]:
    """A captive-portal-like server: HTML 200 to everything."""
    yield from _tiny_server(200, "<html><body>Welcome to the hotel wifi</body></html>",
                            {"Content-Type": "text/html"})


@pytest.fixture
def headerless_gcp_port() -> Iterator[int]:
    """Answers plausible GCP values but without the Metadata-Flavor: Google header."""
    yield from _tiny_server(200, "projects/1/zones/us-central1-a", {"Content-Type": "text/plain"})
