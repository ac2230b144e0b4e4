"""testinfra verify for molecule/default: files, units, per-container sysctls."""

from __future__ import annotations

import pytest

SYSCTL_FILE = "/etc/sysctl.d/90-vpsnet.conf"
# Per host: (rtt_ms, bandwidth_mbit) from the scenario's region groups.
REGION = {"vpsnet-mol-aws": (70, 5000), "vpsnet-mol-gcp": (180, 2000)}


def expected_buffer(host) -> int:  # type: ignore[no-untyped-def]
    rtt, mbit = REGION[host.backend.get_hostname()]
    return max(min(2 * int(mbit * 1_000_000 / 8 * rtt / 1000), 268435456), 6291456)


def test_apt_source_is_deb822_signed(host) -> None:  # type: ignore[no-untyped-def]
    src = host.file("/etc/apt/sources.list.d/vpsnet.sources")
    assert src.mode == 0o644
    assert "URIs: file:///srv/vpsnet-repo/apt" in src.content_string
    assert "Signed-By: /etc/apt/keyrings/vpsnet-archive-keyring.asc" in src.content_string
    assert host.file("/etc/apt/keyrings/vpsnet-archive-keyring.asc").content_string.startswith(
        "-----BEGIN PGP PUBLIC KEY BLOCK-----")
    policy = host.check_output("apt-cache policy vpsnet-dkms")
    assert "file:/srv/vpsnet-repo/apt bookworm/main" in policy


@pytest.mark.parametrize("pkg", ["vpsnet-dkms", "vpsnet-tools"])
def test_packages_at_pinned_version(host, pkg) -> None:  # type: ignore[no-untyped-def]
    package = host.package(pkg)
    assert package.is_installed
    assert package.version == "1.0.0"


def test_no_recommends_pulled(host) -> None:  # type: ignore[no-untyped-def]
    # vpsnet-dkms Suggests kernel headers; nothing beyond Depends is installed.
    assert not host.package("linux-headers-amd64").is_installed


def test_modprobe_and_modules_load(host) -> None:  # type: ignore[no-untyped-def]
    conf = host.file("/etc/modprobe.d/vpsnet.conf").content_string
    assert "options vpsnet drivers=ena,virtio_net,gve interval_ms=1000 stall_intervals=3 uevents=Y" in conf
    assert host.file("/etc/modules-load.d/vpsnet.conf").content_string.strip().endswith("vpsnet")


def test_sysctl_file_has_only_netns_keys(host) -> None:  # type: ignore[no-untyped-def]
    text = host.file(SYSCTL_FILE).content_string
    keys = {line.split("=")[0].strip() for line in text.splitlines() if line and not line.startswith("#")}
    assert "net.core.somaxconn" in keys and "net.ipv4.tcp_rmem" in keys
    for host_wide in ("vm.nr_hugepages", "net.core.rmem_max", "net.core.wmem_max", "net.core.default_qdisc"):
        assert host_wide not in keys


def test_per_container_sysctls_applied(host) -> None:  # type: ignore[no-untyped-def]
    assert host.sysctl("net.core.somaxconn") == 8192
    assert host.sysctl("net.ipv4.tcp_congestion_control") in ("bbr", "reno", "cubic")
    assert host.sysctl("net.ipv4.tcp_mtu_probing") == 1
    assert host.check_output("sysctl -n net.ipv4.tcp_rmem").split() == ["4096", "131072", str(expected_buffer(host))]
    assert host.check_output("sysctl -n net.ipv4.tcp_wmem").split()[2] == str(expected_buffer(host))


def test_irq_affinity_units_shipped(host) -> None:  # type: ignore[no-untyped-def]
    assert host.file("/usr/local/sbin/vpsnet-irq-affinity").mode == 0o755
    assert host.file("/etc/udev/rules.d/61-vpsnet-irq-affinity.rules").exists
    for unit in ("vpsnet-irq-affinity.service", "vpsnet-irq-affinity.timer"):
        assert host.service(unit).is_enabled
    conf = host.file("/etc/vpsnet/irq-affinity.conf").content_string
    nic = "ens5" if host.backend.get_hostname() == "vpsnet-mol-aws" else "ens4"
    assert any(line.startswith(nic + " ") for line in conf.splitlines())
    assert "vpsnet-irq-affinity-policy" in host.file("/etc/default/irqbalance").content_string
