"""The lab boots real guests that look like AWS and GCP instances."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vpsnet_lab.fleet import Lab
from vpsnet_lab.paths import CACHE, LabError, kernel_releases

pytestmark = pytest.mark.lab

IMDS = "http://169.254.169.254"


def curl(lab: Lab, guest: str, args: str) -> str:
    """HTTP status and body of a request made inside the guest."""
    return lab.ssh(guest, f"curl -s -m 30 -w ' %{{http_code}}' {args}").stdout


def wait_carrier(lab: Lab, guest: str, nic: str, value: int, deadline: int = 60) -> None:
    """Wait in GUEST until NIC's carrier reads VALUE: QEMU's set_link reaches the
    guest's driver when it gets to it (seconds on a loaded TCG host)."""
    lab.ssh(guest, f"timeout {deadline} sh -c 'until [ \"$(cat /sys/class/net/{nic}/carrier)\" "
                   f"= {value} ]; do sleep 0.2; done'", check=True)


def test_guests_run_debian_cloud_kernels(lab: Lab) -> None:
    releases = kernel_releases()
    assert lab.ssh("aws61", "uname -r", check=True).stdout.strip() == releases["6.1"]
    assert lab.ssh("gcp612", "uname -r", check=True).stdout.strip() == releases["6.12"]


@pytest.mark.parametrize(("guest", "vendor", "product"), [
    ("aws61", "Amazon EC2", "m5.xlarge"),
    ("gcp612", "Google", "Google Compute Engine"),
])
def test_dmi_identity(lab: Lab, guest: str, vendor: str, product: str) -> None:
    out = lab.ssh(guest, "cd /sys/class/dmi/id && cat sys_vendor product_name bios_vendor",
                  check=True).stdout.splitlines()
    assert out == [vendor, product, vendor]


def test_aws_metadata_enforces_imdsv2(lab: Lab) -> None:
    token_req = f"-X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' {IMDS}/latest/api/token"
    token, status = curl(lab, "aws61", token_req).rsplit(" ", 1)
    assert status == "200" and len(token) > 20
    zone = f"{IMDS}/latest/meta-data/placement/availability-zone"
    assert curl(lab, "aws61", f"-H 'X-aws-ec2-metadata-token: {token}' {zone}") == "us-east-1a 200"
    assert curl(lab, "aws61", zone).endswith(" 401")  # IMDSv1 refused
    assert curl(lab, "aws61", f"-H 'X-aws-ec2-metadata-token: x{token}' {zone}").endswith(" 401")
    itype = f"-H 'X-aws-ec2-metadata-token: {token}' {IMDS}/latest/meta-data/instance-type"
    assert curl(lab, "aws61", itype) == "m5.xlarge 200"


def test_gcp_metadata_enforces_flavor_header(lab: Lab) -> None:
    zone = f"{IMDS}/computeMetadata/v1/instance/zone"
    assert curl(lab, "gcp612", zone).endswith(" 403")
    body = curl(lab, "gcp612", f"-H 'Metadata-Flavor: Google' {zone}")
    assert re.fullmatch(r"projects/\d+/zones/asia-east1-b 200", body), body
    by_name = "http://metadata.google.internal/computeMetadata/v1/instance/machine-type"
    assert curl(lab, "gcp612", f"-H 'Metadata-Flavor: Google' {by_name}").endswith(
        "/machineTypes/e2-standard-2 200")


def test_multiqueue_nic_and_its_namespace(lab: Lab) -> None:
    out = lab.ssh("aws61", "ethtool -l eth1", check=True).stdout
    assert re.search(r"Current hardware settings:.*Combined:\s+4", out, re.S), out
    nic = lab.spec.guest("aws61").nics[0]
    assert nic.netns and nic.peer_address
    peer = nic.peer_address.split("/")[0]
    lab.ssh("aws61", f"ping -c 2 -W 10 {peer}", check=True)
    queues = subprocess.run(["ip", "netns", "exec", nic.netns, "ls", "/sys/class/net/tap1/queues"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert sorted(q for q in queues if q.startswith("rx-")) == [f"rx-{i}" for i in range(4)]


def test_socket_link_and_carrier_control(lab: Lab) -> None:
    peer = lab.spec.guest("gcp612").nics[0].address
    assert peer
    lab.ssh("aws61", f"ping -c 2 -W 10 {peer.split('/')[0]}", check=True)
    lab.link("aws61", "eth2", up=False)
    try:
        wait_carrier(lab, "aws61", "eth2", 0)
        assert lab.ssh("aws61", "cat /sys/class/net/eth2/carrier").stdout.strip() == "0"
    finally:
        lab.link("aws61", "eth2", up=True)
    wait_carrier(lab, "aws61", "eth2", 1)
    assert lab.ssh("aws61", "cat /sys/class/net/eth2/carrier").stdout.strip() == "1"


def test_pause_and_resume(lab: Lab) -> None:
    lab.pause("gcp612")
    try:
        states = {r["name"]: r["state"] for r in lab.status()}
        assert states == {"aws61": "running", "gcp612": "paused"}
    finally:
        lab.resume("gcp612")
    assert lab.ssh("gcp612", "hostname", check=True).stdout.strip() == "gcp612"


def test_cli_reaches_the_session_lab(lab: Lab, lab_state_dir: Path) -> None:
    cli = [str(Path(sys.executable).parent / "vpsnet-lab"), "--state", str(lab_state_dir)]
    out = subprocess.run([*cli, "ssh", "gcp612", "cat", "/etc/hostname"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    assert out.strip() == "gcp612"
    status = subprocess.run([*cli, "status"], capture_output=True, text=True, check=True).stdout
    port = lab.spec.guest("aws61").ssh_port
    assert re.search(rf"aws61\s+aws\s+us-east-1\s+us-east-1a\s+6\.1\s+{port}\s+\d+\s+running",
                     status), status


MINI_PORT = int(os.environ.get("VPSNET_TEST_BASE_PORT", "12022")) + 1000
MINI = {
    "name": "mini", "base_port": MINI_PORT,
    "guests": [{"name": "solo", "cloud": "gcp", "region": "europe-west4", "zone": "europe-west4-a",
                "instance_type": "n2-standard-2", "kernel": "6.12", "memory_mb": 512,
                "nics": [{"queues": 2}]}],
}


def _leftovers(state: Path, recorded: dict[str, object]) -> list[str]:
    found = []
    for proc in recorded["procs"]:  # type: ignore[attr-defined]
        if Path(f"/proc/{proc}").exists():
            found.append(f"pid {proc}")
    ps = subprocess.run(["pgrep", "-af", str(state)], capture_output=True, text=True).stdout
    found += [line for line in ps.splitlines() if "pgrep" not in line]
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [ns for ns in recorded["netns"] if ns in netns]  # type: ignore[attr-defined]
    return found


def test_down_leaves_nothing_behind(tmp_path: Path) -> None:
    state = CACHE / f"lab-mini-{MINI_PORT}"
    Lab(state).down()
    lab = Lab.up(MINI, "mini", state_dir=state)
    recorded = {"procs": [p["pid"] for p in lab.state["guests"].values()] +
                [lab.state["helper"]["pid"]], "netns": list(lab.state["netns"])}
    try:
        assert lab.ssh("solo", "cat /sys/class/dmi/id/product_name").stdout.strip() == \
            "Google Compute Engine"
        # The leftover probe sees the running lab, so an empty answer later means something.
        assert recorded["netns"] and _leftovers(state, recorded)
    finally:
        lab.down()
    assert _leftovers(state, recorded) == []
    assert not (state / "state.json").exists()


def test_failed_boot_reports_serial_log_and_cleans_up() -> None:
    state = CACHE / f"lab-mini-{MINI_PORT}"
    with pytest.raises(LabError) as exc:
        Lab.up(yaml.safe_load(yaml.safe_dump(MINI)), "mini", state_dir=state, boot_timeout=3)
    assert f"no SSH on 127.0.0.1:{MINI_PORT} within 3s" in str(exc.value)
    assert "serial log tail" in str(exc.value)
    assert not Lab(state).is_up()
    assert subprocess.run(["pgrep", "-f", str(state)], capture_output=True).returncode == 1
