"""inventories/production/gcp_compute.yml run by the real google.cloud.gcp_compute
plugin against a stand-in for the Compute API on 127.0.0.1 (HTTPS_PROXY tunnels
www.googleapis.com to it through a test CA; an access token, so no OAuth call;
any other request is refused and fails the test): edge instances in three regions
land in region_* groups with vpsnet_region composed; the API's filter drops the
decoys (another role, a stopped instance)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from . import local_cloud as cloud
from .compute_standin import API_HOST, StandIn, compute_standin

PROJECT = "vpsnet-edge-prod"
TOKEN = "ya29.vpsnet-test-token"
API = f"https://{API_HOST}/compute/v1/projects/{PROJECT}"
# zone -> (name, role label, status, private address); us-central1-f is empty
ZONES = {
    "asia-east1-a": [("edge-ase1-a1", "vpsnet-edge", "RUNNING", "10.140.0.2"),
                     ("decoy-origin", "vpsnet-origin", "RUNNING", "10.140.0.9")],
    "asia-east1-b": [("edge-ase1-b1", "vpsnet-edge", "RUNNING", "10.140.0.3")],
    "europe-west4-b": [("edge-euw4-b1", "vpsnet-edge", "RUNNING", "10.164.0.2"),
                       ("decoy-stopped", "vpsnet-edge", "TERMINATED", "10.164.0.9")],
    "us-central1-c": [("edge-usc1-c1", "vpsnet-edge", "RUNNING", "10.128.0.2")],
    "us-central1-f": [],
}
EDGE = {"asia-east1": ["edge-ase1-a1", "edge-ase1-b1"], "europe-west4": ["edge-euw4-b1"],
        "us-central1": ["edge-usc1-c1"]}


def instance(zone: str, name: str, role: str, status: str, address: str) -> dict[str, Any]:
    """An instances.get-shaped resource, as the aggregated list holds it."""
    region = zone.rsplit("-", 1)[0]
    return {
        "kind": "compute#instance", "id": str(abs(hash(name)) % 10**18), "name": name,
        "status": status, "labels": {"role": role},
        "zone": f"{API}/zones/{zone}",
        "machineType": f"{API}/zones/{zone}/machineTypes/e2-small",
        "selfLink": f"{API}/zones/{zone}/instances/{name}",
        "networkInterfaces": [{
            "name": "nic0", "networkIP": address,
            "network": f"{API}/global/networks/default",
            "subnetwork": f"{API}/regions/{region}/subnetworks/default"}],
    }


@pytest.fixture(scope="module")
def gcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("gcp_compute")
    zones = {z: [instance(z, *i) for i in items] for z, items in ZONES.items()}
    with compute_standin(tmp, zones, [PROJECT], TOKEN) as (server, ca):
        source = cloud.render_inventory("gcp_compute.yml", tmp, auth_kind="accesstoken")
        env = cloud.offline_env(tmp, GCP_ACCESS_TOKEN=TOKEN, REQUESTS_CA_BUNDLE=str(ca),
                          HTTPS_PROXY=server.url, https_proxy=server.url,
                          HTTP_PROXY=server.url, http_proxy=server.url)
        yield {"source": source, "env": env, "server": server}


def region_group(region: str) -> str:
    return "region_" + region.replace("-", "_")


def assert_only_the_api_was_asked(server: StandIn) -> None:
    assert server.refused == []
    assert server.served, "the plugin asked the stand-in nothing"
    for request in server.served:
        assert request["path"] == f"/compute/v1/projects/{PROJECT}/aggregated/instances"
        assert request["authorization"] == f"Bearer {TOKEN}"
        assert request["filter"] == "(labels.role = vpsnet-edge) (status = RUNNING)"
    # every page, once a run: the zones in order, from the first page
    pages = [int(r.get("pageToken", 0)) for r in server.served]
    assert pages == list(range(len(ZONES))) * (len(pages) // len(ZONES)), pages


def test_graph_shows_a_group_per_region_and_no_decoys(gcp: dict[str, Any]) -> None:
    graph = cloud.ansible_inventory(gcp["source"], gcp["env"], "--graph")
    listed = cloud.inventory_list(gcp["source"], gcp["env"])
    for region, names in EDGE.items():
        assert sorted(cloud.group_members(listed, region_group(region))) == names, graph
        assert f"@{region_group(region)}:" in graph
    every = sorted(n for names in EDGE.values() for n in names)
    assert sorted(cloud.group_members(listed, "gcp")) == every
    assert sorted(listed["_meta"]["hostvars"]) == every
    assert "decoy" not in graph
    assert_only_the_api_was_asked(gcp["server"])


def test_hostvars_compose_the_region_and_the_private_address(gcp: dict[str, Any]) -> None:
    hostvars = cloud.inventory_list(gcp["source"], gcp["env"])["_meta"]["hostvars"]
    for zone, items in ZONES.items():
        for name, _, status, address in items:
            if status != "RUNNING" or name.startswith("decoy"):
                continue
            assert hostvars[name]["zone"] == zone
            assert hostvars[name]["vpsnet_region"] == zone.rsplit("-", 1)[0]
            assert hostvars[name]["ansible_host"] == address
            assert hostvars[name]["project"] == PROJECT
    assert_only_the_api_was_asked(gcp["server"])


def test_the_production_file_is_what_ran_but_its_auth_kind(gcp: dict[str, Any]) -> None:
    production = yaml.safe_load((cloud.PRODUCTION / "gcp_compute.yml").read_text())
    rendered = yaml.safe_load(gcp["source"].read_text())
    assert {k: v for k, v in rendered.items() if k != "auth_kind"} == \
        {k: v for k, v in production.items() if k != "auth_kind"}
