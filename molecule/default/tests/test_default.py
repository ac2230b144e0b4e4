"""testinfra verify for molecule/default: files, units, per-container sysctls."""

from __future__ import annotations

import pytest
from testinfra.host import Host

SYSCTL_FILE = "/etc/sysctl.d/90-vpsnet.conf"
# Per host: (rtt_ms, bandwidth_mbit) from the scenario's region groups.
REGION = {"vpsnet-mol-aws": (70, 5000), "vpsnet-mol-gcp": (180, 2000)}


def expected_buffer(host: Host) -> int:
    rtt, mbit = REGION[host.backend.get_hostname()]
    return max(min(2 * int(mbit * 1_000_000 / 8 * rtt / 1000), 268435456), 6291456)


def test_apt_source_is_deb822_signed(host: Host) -> None:
    src = host.file("/etc/apt/sources.list.d/vpsnet.sources")
    assert src.mode == 0o644
    assert "URIs: file:///srv/vpsnet-repo/apt" in src.content_string
    assert "Signed-By: /etc/apt/keyrings/vpsnet-archive-keyring.asc" in src.content_string
    assert host.file("/etc/apt/keyrings/vpsnet-archive-keyring.asc").content_string.startswith(
        "-----BEGIN PGP PUBLIC KEY BLOCK-----"
    )
    policy = host.check_output("apt-cache policy vpsnet-dkms")
    assert "file:/srv/vpsnet-repo/apt bookworm/main" in policy


@pytest.mark.parametrize("pkg", ["vpsnet-dkms", "vpsnet-tools"])
def test_packages_at_pinned_version(host: Host, pkg: str) -> None:
    package = host.package(pkg)
    assert package.is_installed
    assert package.version == "1.0.0"


def test_no_recommends_pulled(host: Host) -> None:
    # vpsnet-dkms Suggests kernel headers; nothing beyond Depends is installed.
    assert not host.package("linux-headers-amd64").is_installed


def test_modprobe_and_modules_load(host: Host) -> None:
    conf = host.file("/etc/modprobe.d/vpsnet.conf").content_string
    assert (
        "options vpsnet drivers=ena,virtio_net,gve interval_ms=1000 stall_intervals=3 uevents=Y"
        in conf
    )
    assert host.file("/etc/modules-load.d/vpsnet.conf").content_string.strip().endswith("vpsnet")


def test_sysctl_file_has_only_netns_keys(host: Host) -> None:
    text = host.file(SYSCTL_FILE).content_string
    keys = {
        line.split("=")[0].strip()
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert "net.core.somaxconn" in keys and "net.ipv4.tcp_rmem" in keys
    for host_wide in (
        "vm.nr_hugepages",
        "net.core.rmem_max",
        "net.core.wmem_max",
        "net.core.default_qdisc",
    ):
        assert host_wide not in keys


def test_per_container_sysctls_applied(host: Host) -> None:
    assert host.sysctl("net.core.somaxconn") == 8192
    assert host.sysctl("net.ipv4.tcp_congestion_control") in ("bbr", "reno", "cubic")
    assert host.sysctl("net.ipv4.tcp_mtu_probing") == 1
    assert host.check_output("sysctl -n net.ipv4.tcp_rmem").split() == [
        "4096",
        "131072",
        str(expected_buffer(host)),
    ]
    assert host.check_output("sysctl -n net.ipv4.tcp_wmem").split()[2] == str(expected_buffer(host))


def test_irq_affinity_units_shipped(host: Host) -> None:
    assert host.file("/usr/local/sbin/vpsnet-irq-affinity").mode == 0o755
    assert host.file("/etc/udev/rules.d/61-vpsnet-irq-affinity.rules").exists
    for unit in ("vpsnet-irq-affinity.service", "vpsnet-irq-affinity.timer"):
        assert host.service(unit).is_enabled
    conf = host.file("/etc/vpsnet/irq-affinity.conf").content_string
    nic = "ens5" if host.backend.get_hostname() == "vpsnet-mol-aws" else "ens4"
    assert any(line.startswith(nic + " ") for line in conf.splitlines())
    assert "vpsnet-irq-affinity-policy" in host.file("/etc/default/irqbalance").content_string


# vpsnet_exporter: the role ran for real (package from the signed repository).
EXPORTER = "vpsnet-exporter.service"
EXPORTER_DEFAULT_PORT = 19462
# Per host: ProtectProc= the unit runs with (the GCP container's systemd has no
# CAP_SYS_PTRACE, so molecule.yml sets vpsnet_exporter_protect_proc: default there).
PROTECT_PROC = {"vpsnet-mol-aws": "invisible", "vpsnet-mol-gcp": "default"}
FETCH = (
    "import sys, urllib.request; "
    "r = urllib.request.urlopen(sys.argv[1], timeout=5); "
    "sys.stdout.write(r.read().decode())"
)


def exporter_vars(host: Host) -> tuple[str, int]:
    """The listen address and port molecule.yml gave the role (not its defaults)."""
    variables = host.ansible.get_variables()
    address, port = (
        variables["vpsnet_exporter_listen_address"],
        int(variables["vpsnet_exporter_port"]),
    )
    assert address == "127.0.0.1" and port != EXPORTER_DEFAULT_PORT
    return address, port


def unit_properties(host: Host) -> dict[str, str]:
    out = host.check_output(
        f"systemctl show --all {EXPORTER} --no-pager"
    )  # --all: empty values too
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def main_pid(host: Host) -> int:
    pid = int(unit_properties(host)["MainPID"])
    assert pid > 0, f"{EXPORTER} has no main process"
    return pid


def test_exporter_unit_enabled_and_active(host: Host) -> None:
    service = host.service(EXPORTER)
    assert service.is_enabled
    assert service.is_running
    props = unit_properties(host)
    assert props["ActiveState"] == "active" and props["SubState"] == "running"
    assert (
        props["FragmentPath"] == "/lib/systemd/system/vpsnet-exporter.service"
    )  # the package's unit
    assert props["NRestarts"] == "0", "the exporter has been restarting"
    assert "/etc/systemd/system/vpsnet-exporter.service.d/ansible.conf" in props["DropInPaths"]


def test_exporter_unit_hardening(host: Host) -> None:
    props = unit_properties(host)
    assert props["DynamicUser"] == "yes"
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "yes"
    assert props["PrivateUsers"] == "yes"
    assert props["PrivateTmp"] == "yes" and props["PrivateDevices"] == "yes"
    assert props["CapabilityBoundingSet"] == "" and props["AmbientCapabilities"] == ""
    assert set(props["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert props["ProtectProc"] == PROTECT_PROC[host.backend.get_hostname()]


def test_exporter_process_is_confined(host: Host) -> None:
    """The running process, not only the unit file: the settings took effect."""
    pid = main_pid(host)
    status = dict(
        (k.strip(), v.strip())
        for k, v in (
            line.split(":", 1)
            for line in host.file(f"/proc/{pid}/status").content_string.splitlines()
        )
    )
    uid = int(status["Uid"].split()[0])
    assert uid != 0, "runs as root"
    assert 61184 <= uid <= 65519, f"uid {uid} is not a DynamicUser= uid"
    assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"  # SystemCallFilter= is in force
    mounts: dict[str, list[str]] = {}
    for line in host.file(f"/proc/{pid}/mountinfo").content_string.splitlines():
        fields = line.split()
        mounts[fields[4]] = fields  # the last mount on a path is the one the process sees

    def mount_of(path: str) -> list[str]:
        point = max(
            (m for m in mounts if path == m or path.startswith(m.rstrip("/") + "/")), key=len
        )
        return mounts[point]

    for path in ("/usr", "/etc", "/var/lib"):  # ProtectSystem=strict: the whole tree read-only
        assert "ro" in mount_of(path)[5].split(","), f"{path} is writable for the exporter"
    for path in (
        "/root",
        "/home",
        "/run/user",
    ):  # ProtectHome=yes: an inaccessible directory on top
        assert "inaccessible" in mounts[path][3], f"{path} is visible to the exporter"
    proc_opts = mounts["/proc"][-1]
    if PROTECT_PROC[host.backend.get_hostname()] == "invisible":
        assert "hidepid=invisible" in proc_opts, proc_opts
    else:
        assert "hidepid" not in proc_opts, proc_opts


def test_exporter_default_file_holds_configured_values(host: Host) -> None:
    address, port = exporter_vars(host)
    default = host.file("/etc/default/vpsnet-exporter")
    assert default.mode == 0o644 and default.user == "root"
    args = default.content_string.split('VPSNET_EXPORTER_ARGS="', 1)[1].split('"', 1)[0].split()
    assert args == [
        "--file",
        "/proc/net/vpsnet/metrics",
        "--log-level",
        "info",
        "--listen",
        f"{address}:{port}",
    ]
    dropin = host.file("/etc/systemd/system/vpsnet-exporter.service.d/ansible.conf").content_string
    assert f"ProtectProc={PROTECT_PROC[host.backend.get_hostname()]}" in dropin
    # The process was started with them (EnvironmentFile= read, not a stale start).
    cmdline = host.file(f"/proc/{main_pid(host)}/cmdline").content_string.split("\0")
    assert f"{address}:{port}" in cmdline


def test_exporter_answers_on_configured_port(host: Host) -> None:
    address, port = exporter_vars(host)
    assert host.socket(f"tcp://{address}:{port}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening
    assert not host.socket(f"tcp://{EXPORTER_DEFAULT_PORT}").is_listening
    body = host.check_output(f"python3 -c '{FETCH}' http://{address}:{port}/metrics")
    lines = body.splitlines()
    # No module in a container: the exporter says so instead of failing.
    assert "vpsnet_up 0.0" in lines or "vpsnet_up 0" in lines, body
    assert not any(line.startswith("vpsnet_info") for line in lines), body
    # Its own metrics.
    assert any(line.startswith("vpsnet_exporter_scrape_duration_seconds ") for line in lines), body
    assert "# TYPE vpsnet_exporter_scrape_errors_total counter" in lines, body
    # Nothing answers on the default port.
    refused = host.run(f"python3 -c '{FETCH}' http://127.0.0.1:{EXPORTER_DEFAULT_PORT}/metrics")
    assert refused.rc != 0 and "Connection refused" in refused.stderr
