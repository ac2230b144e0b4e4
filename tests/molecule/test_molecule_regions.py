"""A 12-region rollout on systemd containers (molecule's image, vpsnet_upgrade in
container scope): deploy.yml 1.0.0 -> 1.1.0 over every region in the declared
order, each canary alone before its batch; then the broken 1.2.0 (its exporter
exits at start) fails the container gate in the third region: the regions before
it upgraded, its canary rolled back to 1.1.0, no later host touched, the
playbook failed. The fleet: lab/vpsnet_lab/container_fleet.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

import vpsnet_lab.container_fleet as rf

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    # 13 min on a loaded 2-core machine, nearly all of it the two rollouts (the
    # fleet starts from the baked image in about 40 s): make test-all
    pytest.mark.heavy,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("docker") is None or shutil.which("debootstrap") is None,
        reason="needs root, docker.io and debootstrap (make setup)",
    ),
]


def _run(cmd: list[str], env: dict[str, str], timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def fleet(molecule_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[list[rf.Host], Path]]:
    """The containers at 1.0.0, started from the baked image (rf.baked_image: built
    once by provision.yml, then cached by content hash); removed afterwards."""
    image = _run(["bash", "scripts/molecule-image.sh"], molecule_env, 900)
    assert image.returncode == 0, image.stderr[-3000:]
    repo = _run(["bash", "molecule/regions/releases.sh"], molecule_env, 1800)
    assert repo.returncode == 0, repo.stderr[-3000:]
    repo_dir = Path(repo.stdout.strip().splitlines()[-1])
    started = time.monotonic()
    baked = rf.baked_image(image.stdout.strip().splitlines()[-1], repo_dir, molecule_env)
    print(f"{baked}: {time.monotonic() - started:.0f} s")
    hosts = rf.fleet()
    inv = rf.inventory(hosts, repo_dir, tmp_path_factory.mktemp("regions") / "inventory.yml")
    try:
        started = time.monotonic()
        rf.start(hosts, baked)
        print(f"{len(hosts)} containers started: {time.monotonic() - started:.0f} s")
        assert {rf.installed(h) for h in hosts} == {"1.0.0"}
        assert [rf.exporter_active(h) for h in hosts] == [h.exporter for h in hosts]
        # each its own machine-id (the image's is empty)
        assert len({rf.machine_id(h) for h in hosts}) == len(hosts)
        yield hosts, inv
    finally:
        rf.remove(hosts)


def _deploy(inv: Path, version: str, report: Path, env: dict[str, str]
            ) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = _run(["ansible-playbook", "-i", str(inv), "deploy.yml",
                 "-e", f"vpsnet_version={version}", "-e", f"vpsnet_upgrade_report_dir={report}"],
                env, 3600)
    return proc, time.monotonic() - started


def test_twelve_regions_in_order_then_stop_at_the_failing_region(
        fleet: tuple[list[rf.Host], Path], molecule_env: dict[str, str], tmp_path: Path) -> None:
    hosts, inv = fleet
    print(f"{len(hosts)} containers at 1.0.0 in {len(rf.REGIONS)} regions")
    up, up_seconds = _deploy(inv, "1.1.0", tmp_path / "up", molecule_env)
    print(f"deploy 1.1.0 over {len(hosts)} hosts: {up_seconds:.0f} s")
    assert up.returncode == 0, up.stdout[-6000:]
    recs = rf.records(tmp_path / "up")
    assert set(recs) == {h.name for h in hosts}
    for rec in recs.values():
        assert (rec["outcome"], rec["before"], rec["after"]) == ("upgraded", "1.0.0", "1.1.0"), rec
        # the record never claims a module reload in a container
        assert rec["scope"] == "container" and rec["reloaded"] is None, rec
        assert "module reload" in rec["skipped"], rec  # type: ignore[operator]
    assert {rf.installed(h) for h in hosts} == {"1.1.0"}
    assert all(rf.exporter_active(h) for h in hosts if h.exporter)
    # Regions in declared order, each host's step over before the next step starts:
    # the canary (-a) alone, then its batch host.
    order = sorted(hosts, key=lambda h: rf.span(recs[h.name])[0])
    assert [h.region for h in order] == [h.region for h in hosts]
    assert [h.name for h in order] == [h.name for h in hosts]
    for prev, nxt in pairwise(order):
        assert rf.span(recs[prev.name])[1] <= rf.span(recs[nxt.name])[0], (prev, nxt)

    down, down_seconds = _deploy(inv, "1.2.0", tmp_path / "broken", molecule_env)
    print(f"deploy 1.2.0 (fails in region {rf.FAIL_REGION + 1}): {down_seconds:.0f} s")
    out = down.stdout
    assert down.returncode != 0, out[-6000:]
    recs = rf.records(tmp_path / "broken")
    failing = rf.REGIONS[rf.FAIL_REGION]
    before = [h for h in hosts if rf.REGIONS.index(h.region) < rf.FAIL_REGION]
    canary = next(h for h in hosts if h.region == failing)
    untouched = [h for h in hosts if h not in before and h != canary]
    assert set(recs) == {h.name for h in before} | {canary.name}, out[-6000:]
    for h in before:
        assert (recs[h.name]["outcome"], recs[h.name]["after"]) == ("upgraded", "1.2.0")
        assert rf.installed(h) == "1.2.0"
    rec = recs[canary.name]
    assert (rec["outcome"], rec["before"], rec["after"]) == ("rolled_back", "1.1.0", "1.1.0"), rec
    assert "exporter" in str(rec["failure"]), rec
    assert rf.installed(canary) == "1.1.0" and rf.exporter_active(canary)
    for h in untouched:
        assert rf.installed(h) == "1.1.0", h
    assert f"{canary.name} failed" in out, out[-6000:]
