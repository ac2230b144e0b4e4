"""molecule/rollout-core: the rollout story's core in make test, on the smallest
fleet that shows it (2 TCG guests, one per region: us-east-1's canary use1-a on
6.12, asia-east1's ase1-a on the oldest 6.1 ABI of the kernel matrix), in order:

1. fresh deploy of 1.0.0 (molecule prepare = provision.yml): every host gets its
   own kernel's signed prebuilt package, the old-ABI host that ABI's;
2. vpsnet.fleet.deploy to 1.1.0 (additive), run by ansible-playbook from the
   collection tarball installed with ansible-galaxy (collection_runs.py): region by
   region in the declared order, one package upgrade per host, no ping lost through
   any host's NIC, metrics served throughout;
3. 2.0.0 (a breaking rename, ABI major unchanged), run by ansible-runner in the
   execution environment image, stops at the canary, which is rolled back to 1.1.0
   and healthy; asia-east1 is not touched;
4. 1.2.0 (compatible ABI, built unhealthy), the checkout's deploy.yml, the same,
   stopped by the health gate.

The same checks as steps 1, 2, 4 and 5 of the whole story
(test_molecule_rollout.py, make test-all), where the interruption, idempotence,
rollback.yml, the NIC guard, the soak against Prometheus, a lost host and a
killed controller run on a 3-guest fleet. Boots its own lab (.cache/lab-rollout-core,
base port 18022) and always tears it down; VPSNET_ROLLOUT_REUSE=1 keeps a fleet
that is up."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from collection_runs import deploy_from_install, deploy_in_ee, install_for
from rollout_story import (
    Fleet,
    check_breaking_abi_stopped,
    check_fresh_prebuilt,
    check_unhealthy_stopped,
    check_upgraded_without_a_break,
    fleet_up,
    halted_at_canary,
    records,
    start_monitors,
    stop_monitors,
    tail,
)
from testlib.collection_install import Install
from testlib.ee_runner import build_ee_image

from vpsnet_lab.paths import kernel_releases, oldest_abi

HOSTS = ["use1-a", "ase1-a"]  # us-east-1 first, as declared
BASE_PORT = 18022

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root and QEMU (make setup)"),
]


@pytest.fixture(scope="module")
def fleet(molecule_env: dict[str, str]) -> Iterator[Fleet]:
    with fleet_up("rollout-core", HOSTS, BASE_PORT, molecule_env, "1.0.0") as f:
        yield f


@pytest.fixture(scope="module")
def installed(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Install:
    return install_for(fleet, tmp_path_factory.mktemp("collection"))


# Tests run in file order and build on each other (one fleet, one story).


def test_1_fresh_deploy_installs_each_kernels_prebuilt_module(fleet: Fleet) -> None:
    check_fresh_prebuilt(fleet, "1.0.0")
    assert fleet.sh("use1-a", "uname -r").strip() == kernel_releases()["6.12"]
    assert fleet.sh("ase1-a", "uname -r").strip() == oldest_abi("6.1")


def test_2_upgrade_reaches_every_host_region_by_region(fleet: Fleet, installed: Install,
                                                      tmp_path: Path) -> None:
    start_monitors(fleet)
    dpkg_before = {h: len(fleet.dpkg_log(h)) for h in HOSTS}
    r = deploy_from_install(fleet, installed, "1.1.0", tmp_path)
    monitors = stop_monitors(fleet)
    assert r.returncode == 0, tail(r)
    # the role's task files came from the install
    assert f"included: {installed.collection}/roles/vpsnet_upgrade/tasks/" in r.stdout, tail(r)
    recs = records(tmp_path)
    assert sorted(recs) == sorted(HOSTS), tail(r)
    assert all(recs[h]["outcome"] == "upgraded" for h in HOSTS), recs
    assert all(recs[h]["abi_verdict"] == "additive" for h in HOSTS), recs
    # region by region, in the declared order
    assert sorted(HOSTS, key=lambda h: recs[h]["started"]) == HOSTS
    check_upgraded_without_a_break(fleet, "1.1.0", dpkg_before, monitors)


def test_3_breaking_abi_change_stops_at_the_canary(fleet: Fleet, tmp_path: Path) -> None:
    image = build_ee_image()
    check_breaking_abi_stopped(halted_at_canary(
        fleet, "2.0.0", tmp_path / "report",
        deploy=lambda version, report: deploy_in_ee(fleet, image, version, report)))


def test_4_unhealthy_build_is_rolled_back(fleet: Fleet, tmp_path: Path) -> None:
    check_unhealthy_stopped(halted_at_canary(fleet, "1.2.0", tmp_path))
