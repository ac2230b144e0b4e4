"""vpsnet_facts: metadata over real HTTP against the lab's fake services and broken servers."""

from __future__ import annotations

import json
import time

from testlib.vpsnet_facts_helpers import FIXTURES


def probe(vf, port: int, budget: float = 2.0):
    return vf.MetadataProbe(f"http://127.0.0.1:{port}", budget)


def test_aws_imdsv2_token_flow(vf, aws_server):
    srv, seen = aws_server
    p = probe(vf, srv.port)
    facts = vf.detect(str(FIXTURES / "aws-nitro-ena"), p)
    assert facts["provider"] == "aws"
    assert facts["metadata_reachable"] is True
    assert (facts["region"], facts["zone"]) == ("us-east-1", "us-east-1a")
    assert facts["instance_type"] == "m5.large"
    assert facts["instance_type_source"] == "metadata"
    assert facts["instance_id"] == "i-0abc"
    assert p.warnings == []
    # the token comes first, and every GET carries a token: never IMDSv1
    assert seen.requests[0][:2] == ("PUT", "/latest/api/token")
    assert seen.requests[0][2]["X-aws-ec2-metadata-token-ttl-seconds"].isdigit()
    gets = [r for r in seen.requests if r[0] == "GET"]
    assert gets
    assert all(r[2].get("X-aws-ec2-metadata-token") for r in gets)
    # aws evidence points at aws: the GCP endpoint is not queried
    assert not any(r[1].startswith("/computeMetadata") for r in seen.requests)


def test_metadata_decides_when_local_evidence_is_silent(vf, aws_server):
    srv, _ = aws_server
    facts = vf.detect(str(FIXTURES / "kvm-plain"), probe(vf, srv.port))
    assert facts["provider"] == "aws"
    assert any(e.startswith("metadata aws: IMDSv2 identity document") for e in facts["evidence"])


def test_refused_token_never_falls_back_to_imdsv1(vf, gcp_server):
    """A service that refuses the token PUT must not be asked with a bare GET."""
    srv, seen = gcp_server
    p = probe(vf, srv.port)
    facts = vf.detect(str(FIXTURES / "aws-nitro-ena"), p)
    assert facts["provider"] == "aws"  # still from DMI
    assert facts["region"] is None
    assert facts["metadata_reachable"] is False  # no service answered in AWS's protocol
    assert [r[:2] for r in seen.requests] == [("PUT", "/latest/api/token")]
    assert any("IMDSv1 not tried by design" in e for e in facts["evidence"])


def test_gcp_metadata_flavor(vf, gcp_server):
    srv, seen = gcp_server
    p = probe(vf, srv.port)
    facts = vf.detect(str(FIXTURES / "gcp-gvnic"), p)
    assert facts["provider"] == "gcp"
    assert facts["metadata_reachable"] is True
    assert (facts["region"], facts["zone"]) == ("us-central1", "us-central1-a")
    assert facts["instance_type"] == "e2-standard-2"
    assert facts["instance_id"] == "4242424242424242"
    assert p.warnings == []
    assert seen.requests and all(r[2].get("Metadata-Flavor") == "Google" for r in seen.requests)
    assert not any(r[1].startswith("/latest") for r in seen.requests)


def test_gcp_answer_without_flavor_header_is_ignored(vf, headerless_gcp_port):
    p = probe(vf, headerless_gcp_port)
    facts = vf.detect(str(FIXTURES / "gcp-virtio"), p)
    assert facts["provider"] == "gcp"  # from DMI
    assert facts["zone"] is None and facts["region"] is None
    assert any("lacks the Metadata-Flavor: Google header" in w for w in p.warnings)
    assert any("garbage" in e for e in facts["evidence"])


def test_nothing_listening(vf, closed_port):
    start = time.monotonic()
    facts = vf.detect(str(FIXTURES / "aws-nitro-ena"), probe(vf, closed_port))
    assert time.monotonic() - start < 2.5
    assert facts["provider"] == "aws"
    assert facts["metadata_reachable"] is False
    assert facts["instance_type"] == "m5.large" and facts["instance_type_source"] == "dmi"


def test_server_that_never_answers_aws(vf, silent_port):
    start = time.monotonic()
    facts = vf.detect(str(FIXTURES / "aws-nitro-ena"), probe(vf, silent_port))
    elapsed = time.monotonic() - start
    assert elapsed < 2.5
    assert facts["provider"] == "aws"
    assert facts["metadata_reachable"] is False
    assert any("ReadTimeout" in e for e in facts["evidence"])


def test_server_that_never_answers_both_clouds_share_one_budget(vf, silent_port):
    """Unknown locally: both clouds are tried, still within the total budget."""
    start = time.monotonic()
    facts = vf.detect(str(FIXTURES / "kvm-plain"), probe(vf, silent_port))
    elapsed = time.monotonic() - start
    assert elapsed < 2.5
    assert facts["provider"] == "unknown"
    assert facts["metadata_reachable"] is False


def test_server_that_announces_a_huge_body_is_refused_at_once(vf, dripping_port):
    """Content-Length 100000 (over MAX_BODY): refused on the headers, before any drip.
    Servers that drip within the limit: test_vpsnet_facts_budget.py."""
    start = time.monotonic()
    facts = vf.detect(str(FIXTURES / "kvm-plain"), probe(vf, dripping_port))
    assert time.monotonic() - start < 1.0
    assert facts["provider"] == "unknown"
    assert any("body over 65536 bytes" in e for e in facts["evidence"]), facts["evidence"]


def test_html_answers_are_ignored_with_a_warning(vf, html_port):
    p = probe(vf, html_port)
    facts = vf.detect(str(FIXTURES / "kvm-plain"), p)
    assert facts["provider"] == "unknown"
    assert facts["region"] is None and facts["instance_type"] is None
    assert facts["metadata_reachable"] is False
    assert any("aws: ignored a garbage answer (token is not a token)" in w for w in p.warnings)
    assert any(w.startswith("vpsnet_facts: metadata gcp: ignored") for w in p.warnings)


def test_absurd_aws_region_is_ignored(vf, aws_server):
    srv, _ = aws_server
    doc = json.loads(srv.documents["dynamic/instance-identity/document"])
    doc["region"] = "<b>Mars</b>"
    srv.documents["dynamic/instance-identity/document"] = json.dumps(doc)
    p = probe(vf, srv.port)
    facts = vf.detect(str(FIXTURES / "aws-nitro-ena"), p)
    assert facts["provider"] == "aws"
    assert facts["region"] is None
    assert facts["instance_type_source"] == "dmi"
    assert any("region '<b>Mars</b>'" in w for w in p.warnings)


def test_absurd_gcp_zone_is_ignored(vf, gcp_server):
    srv, _ = gcp_server
    srv.documents["instance/zone"] = "projects/1/zones/the-moon"
    p = probe(vf, srv.port)
    facts = vf.detect(str(FIXTURES / "gcp-virtio"), p)
    assert facts["provider"] == "gcp"
    assert facts["zone"] is None
    assert any("zone 'projects/1/zones/the-moon'" in w for w in p.warnings)


def test_non_gcp_error_is_evidence_not_a_warning(vf, aws_server):
    """An AWS service asked the GCP way answers 404 without the header: not garbage."""
    srv, _ = aws_server
    p = vf.MetadataProbe(f"http://127.0.0.1:{srv.port}", 2.0)
    assert p.gcp() is None
    assert p.warnings == []
    assert any("not a GCP metadata service (HTTP 404" in e for e in p.evidence)


def test_gcp_metadata_decides_when_local_evidence_is_silent(vf, gcp_server):
    srv, _ = gcp_server
    facts = vf.detect(str(FIXTURES / "kvm-plain"), probe(vf, srv.port))
    assert facts["provider"] == "gcp"
    assert facts["zone"] == "us-central1-a"
