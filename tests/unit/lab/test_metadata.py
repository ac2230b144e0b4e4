"""The fake metadata services behave like AWS IMDSv2 and GCP's server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from vpsnet_lab.metadata import Identity, MetadataServer

TOKEN_TTL = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN = "X-aws-ec2-metadata-token"
# Each request waits for its answer; this only bounds a hung server (a loaded
# machine can take seconds to schedule the server thread).
WAIT = 30


def serve(cloud: str) -> Iterator[MetadataServer]:
    ident = Identity(cloud=cloud, name="n1", region="us-east-1" if cloud == "aws" else
                     "asia-east1", zone="us-east-1a" if cloud == "aws" else "asia-east1-a",
                     instance_type="m5.large" if cloud == "aws" else "e2-standard-2",
                     instance_id="i-0123456789abcdef0" if cloud == "aws" else "1234567890")
    srv = MetadataServer(ident, port=0)
    srv.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def aws(aws_server: MetadataServer) -> str:
    return f"http://127.0.0.1:{aws_server.port}"


@pytest.fixture
def gcp(gcp_server: MetadataServer) -> str:
    return f"http://127.0.0.1:{gcp_server.port}"


@pytest.fixture
def aws_server() -> Iterator[MetadataServer]:
    yield from serve("aws")


@pytest.fixture
def gcp_server() -> Iterator[MetadataServer]:
    yield from serve("gcp")


def token(url: str, ttl: str = "60") -> requests.Response:
    return requests.put(f"{url}/latest/api/token", headers={TOKEN_TTL: ttl}, timeout=WAIT)


def test_aws_token_flow(aws: str) -> None:
    r = token(aws)
    assert r.status_code == 200 and r.headers[TOKEN_TTL] == "60"
    got = requests.get(f"{aws}/latest/meta-data/placement/availability-zone",
                       headers={TOKEN: r.text}, timeout=WAIT)
    assert (got.status_code, got.text) == (200, "us-east-1a")
    doc = requests.get(f"{aws}/latest/dynamic/instance-identity/document",
                       headers={TOKEN: r.text}, timeout=WAIT).json()
    assert doc["region"] == "us-east-1" and doc["instanceType"] == "m5.large"


def test_aws_refuses_imdsv1_and_bad_tokens(aws: str) -> None:
    url = f"{aws}/latest/meta-data/instance-id"
    assert requests.get(url, timeout=WAIT).status_code == 401
    assert requests.get(url, headers={TOKEN: "forged"}, timeout=WAIT).status_code == 401


@pytest.mark.parametrize("ttl", ["", "0", "21601", "abc"])
def test_aws_token_needs_a_valid_ttl(aws: str, ttl: str) -> None:
    assert token(aws, ttl).status_code == 400


def test_aws_token_expires(aws: str, aws_server: MetadataServer) -> None:
    now = [1000.0]
    aws_server.tokens.clock = lambda: now[0]
    tok = token(aws, "5").text
    url = f"{aws}/latest/meta-data/instance-id"
    assert requests.get(url, headers={TOKEN: tok}, timeout=WAIT).status_code == 200
    now[0] += 6
    assert requests.get(url, headers={TOKEN: tok}, timeout=WAIT).status_code == 401


def test_aws_refuses_forwarded_token_requests(aws: str) -> None:
    r = requests.put(f"{aws}/latest/api/token",
                     headers={TOKEN_TTL: "60", "X-Forwarded-For": "203.0.113.9"}, timeout=WAIT)
    assert r.status_code == 403


def test_gcp_needs_the_flavor_header(gcp: str) -> None:
    url = f"{gcp}/computeMetadata/v1/instance/zone"
    assert requests.get(url, timeout=WAIT).status_code == 403
    assert requests.get(url, headers={"Metadata-Flavor": "Foo"}, timeout=WAIT).status_code == 403
    r = requests.get(url, headers={"Metadata-Flavor": "Google"}, timeout=WAIT)
    assert r.status_code == 200
    assert r.headers["Metadata-Flavor"] == "Google"
    assert r.text.endswith("/zones/asia-east1-a")


def test_gcp_recursive_instance(gcp: str) -> None:
    r = requests.get(f"{gcp}/computeMetadata/v1/instance/?recursive=true",
                     headers={"Metadata-Flavor": "Google"}, timeout=WAIT)
    inst = json.loads(r.text)
    assert inst["machine-type"].endswith("/machineTypes/e2-standard-2")
    assert inst["id"] == "1234567890"


def test_unknown_cloud_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown cloud 'azure'"):
        MetadataServer(Identity("azure", "n", "r", "z", "t", "i"))
