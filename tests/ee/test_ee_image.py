"""The execution environment image (scripts/ee-build.sh, `make ee`) run in docker with
no network: the pinned ansible-core and ansible-runner, the collections, and
ansible-runner running vpsnet.fleet content from the image's own install against
localhost, judged by the artifacts it writes (status, rc, job events)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from testlib.ee_runner import (
    IMAGE_COLLECTIONS,
    build_ee_image,
    in_image,
    make_private_data_dir,
    run_job,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "unit" / "roles" / "fixtures"
THIRD_PARTY = ["amazon.aws", "google.cloud", "community.general", "ansible.posix"]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("docker") is None or shutil.which("debootstrap") is None,
    reason="needs root, docker.io and debootstrap (make setup)",
)


@pytest.fixture(scope="module")
def ee_image() -> str:
    return build_ee_image()


@pytest.fixture
def private_data_dir(tmp_path: Path) -> Iterator[Path]:
    pdd = make_private_data_dir(tmp_path)
    yield pdd
    shutil.rmtree(pdd, ignore_errors=True)


def _write_yaml(path: Path, doc: Any) -> None:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_ansible_core_and_runner_are_the_pinned_releases(ee_image: str) -> None:
    ansible = in_image(ee_image, "ansible", "--version")
    assert ansible.returncode == 0, ansible.stderr
    assert ansible.stdout.splitlines()[0] == "ansible [core 2.19.14]", ansible.stdout
    runner = in_image(ee_image, "ansible-runner", "--version")
    assert (runner.returncode, runner.stdout.strip()) == (0, "2.4.3"), runner.stderr


def test_collections_are_vpsnet_fleet_and_the_required_third_party_releases(
    ee_image: str,
) -> None:
    listing = in_image(ee_image, "ansible-galaxy", "collection", "list", "--format", "json")
    assert listing.returncode == 0, listing.stderr
    installed = json.loads(listing.stdout)[IMAGE_COLLECTIONS]
    required = {c["name"]: c["version"]
                for c in yaml.safe_load((REPO / "requirements.yml").read_text())["collections"]}
    expected = {name: required[name] for name in THIRD_PARTY}
    expected["vpsnet.fleet"] = (REPO / "VERSION").read_text().strip()
    assert {name: meta["version"] for name, meta in installed.items()} == expected


def test_inventory_plugin_dependencies_are_importable_offline(ee_image: str) -> None:
    probe = ("import boto3, botocore, google.auth, requests; "
             "print(boto3.__version__, botocore.__version__, google.auth.__version__, "
             "requests.__version__)")
    proc = in_image(ee_image, "python3", "-c", probe)
    assert proc.returncode == 0, proc.stderr
    pins = dict(line.split("==") for line in (REPO / "ee/requirements.txt").read_text().split()
                if "==" in line)
    assert proc.stdout.split() == [pins[n] for n in ("boto3", "botocore", "google-auth",
                                                      "requests")]
    # The wheelhouse the build installed from is gone, and pip is pointed at none.
    config = in_image(ee_image, "sh", "-c", "pip config list; ls /var/cache")
    assert "wheelhouse" not in config.stdout and "find-links" not in config.stdout, config.stdout


def test_runner_deploy_with_a_bad_version_fails_in_the_plan_play(
    ee_image: str, private_data_dir: Path
) -> None:
    """vpsnet.fleet.deploy from the image's install: the plan play refuses the bad
    version by name, and no later play starts."""
    _write_yaml(private_data_dir / "inventory" / "hosts.yml", {"all": {
        "vars": {"ansible_connection": "local",
                 "ansible_python_interpreter": "/usr/bin/python3",
                 "vpsnet_rollout_prometheus_url": "http://127.0.0.1:9",
                 "vpsnet_rollout_regions": ["test-1", "test-2"]},
        "hosts": {"edge-1": {"vpsnet_region": "test-1"},
                  "edge-2": {"vpsnet_region": "test-2"}},
    }})
    bad = "1.x;rm -rf /"
    (private_data_dir / "env" / "extravars").write_text(json.dumps({"vpsnet_version": bad}))
    job = run_job(ee_image, private_data_dir, "vpsnet.fleet.deploy", "bad-version")

    assert (job.status, job.rc) == ("failed", 2), job.stdout[-3000:]
    plays = [e["event_data"]["play"] for e in job.of("playbook_on_play_start")]
    assert plays == ["Plan the rollout"], job.stdout[-3000:]
    failures = job.of("runner_on_failed")
    assert failures, job.stdout[-3000:]
    for failure in failures:
        data = failure["event_data"]
        assert data["task_path"].startswith(f"{IMAGE_COLLECTIONS}/vpsnet/fleet/"), data
        assert f"vpsnet_version='{bad}'" in data["res"]["msg"], data["res"]
    assert job.of("playbook_on_stats"), "the run did not finish its recap"


def test_runner_vpsnet_facts_reads_recorded_host_trees(
    ee_image: str, private_data_dir: Path
) -> None:
    """The collection's module on two recorded hosts (AWS Nitro, GCP gVNIC), no metadata."""
    project = private_data_dir / "project"
    trees = {"aws-host": "aws-nitro-ena", "gcp-host": "gcp-gvnic"}
    for tree in trees.values():
        shutil.copytree(FIXTURES / tree, project / tree, symlinks=True)
    _write_yaml(project / "facts.yml", [{
        "name": "Detect the cloud from a recorded host tree",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [{"name": "Read the host's tree",
                   "vpsnet.fleet.vpsnet_facts": {
                       "root": "{{ playbook_dir }}/{{ vpsnet_test_tree }}",
                       "metadata": False}}],
    }])
    _write_yaml(private_data_dir / "inventory" / "hosts.yml", {"all": {
        "vars": {"ansible_connection": "local",
                 "ansible_python_interpreter": "/usr/bin/python3"},
        "hosts": {host: {"vpsnet_test_tree": tree} for host, tree in trees.items()},
    }})
    job = run_job(ee_image, private_data_dir, "facts.yml", "facts")

    assert (job.status, job.rc) == ("successful", 0), job.stdout[-3000:]
    providers = {e["event_data"]["host"]:
                 e["event_data"]["res"]["ansible_facts"]["vpsnet_cloud"]["provider"]
                 for e in job.of("runner_on_ok")}
    assert providers == {"aws-host": "aws", "gcp-host": "gcp"}, job.stdout[-3000:]
    assert {e["event_data"]["resolved_action"] for e in job.of("runner_on_ok")} == {
        "vpsnet.fleet.vpsnet_facts"}
