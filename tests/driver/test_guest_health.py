"""vpsnet.ko health channels in real guests: carrier flap, rx_silent, tx_stalled, hot-unplug."""

from __future__ import annotations

import time

import pytest
from vpsnet_guest_helpers import (
    GUESTS,
    LINK,
    dmesg_mark,
    dmesg_since,
    health,
    load,
    metrics,
    series,
    value,
    wait_for,
)

from vpsnet_lab.fleet import Lab

pytestmark = pytest.mark.lab
INTERVAL_MS = 200
STALL = 3
# TCG guests, a sampler on a shared workqueue and SSH polling from the host:
# generous slack on top of the spec's bound.
SLACK_S = 4.0


def _peer_addr(lab: Lab, name: str) -> str:
    nic = next(n for n in lab.spec.guest(name).nics if n.link)
    assert nic.peer_address
    return str(nic.peer_address).split("/")[0]


def _transitions(lab: Lab, name: str, dev: str) -> float:
    return value(metrics(lab, name), "vpsnet_health_transitions_total", device=dev)


def _wait_state(lab: Lab, name: str, dev: str, state: str, timeout: float) -> float:
    _, took = wait_for(f"{name} {dev} {state}",
                       lambda: health(lab, name, dev) == state, timeout, interval=0.1)
    return took


@pytest.mark.parametrize("name", GUESTS)
def test_carrier_flap_states_counter_and_uevents(guests: Lab, name: str) -> None:
    dev = LINK[name][0]
    load(guests, name, interval_ms=INTERVAL_MS, stall_intervals=STALL)
    guests.ssh(name, "rm -f /root/uevents.log; nohup udevadm monitor --kernel --property "
               "--subsystem-match=net >/root/uevents.log 2>&1 & sleep 1", check=True)
    flaps0 = value(metrics(guests, name), "vpsnet_link_flaps_total", device=dev)
    guests.link(name, dev, up=False)
    _wait_state(guests, name, dev, "carrier_down", 10)
    guests.link(name, dev, up=True)
    _wait_state(guests, name, dev, "ok", 10)
    assert value(metrics(guests, name), "vpsnet_link_flaps_total", device=dev) == flaps0 + 1

    def events() -> list[dict[str, str]] | None:
        log = guests.ssh(name, "cat /root/uevents.log").stdout
        evs = []
        for block in log.split("\n\n"):
            kv = dict(ln.split("=", 1) for ln in block.splitlines() if "=" in ln)
            if kv.get("INTERFACE") == dev and "VPSNET_STATE" in kv:
                evs.append(kv)
        return evs if len(evs) >= 2 else None

    evs, _ = wait_for("two vpsnet uevents", events, 10)
    guests.ssh(name, "pkill -x udevadm; true")
    assert [(e["ACTION"], e["VPSNET_PREV"], e["VPSNET_STATE"]) for e in evs] == [
        ("change", "ok", "carrier_down"), ("change", "carrier_down", "ok")]


@pytest.mark.parametrize("name", GUESTS)
def test_rx_silent_detected_and_cleared(guests: Lab, name: str) -> None:
    dev, peer, peer_dev = LINK[name]
    load(guests, name, interval_ms=INTERVAL_MS, stall_intervals=STALL)
    addr = _peer_addr(guests, name)
    guests.ssh(name, f"ping -c 2 -W 2 {addr}", check=True)
    # idle link: no false rx_silent
    t0 = _transitions(guests, name, dev)
    time.sleep(3 * (STALL + 1) * INTERVAL_MS / 1000)
    assert health(guests, name, dev) == "ok"
    assert _transitions(guests, name, dev) == t0, "state changed on an idle link"
    # steady bidirectional load: no false rx_silent
    guests.ssh(name, f"nohup ping -q -i 0.2 {addr} >/dev/null 2>&1 &", check=True)
    time.sleep(3 * (STALL + 1) * INTERVAL_MS / 1000)
    assert health(guests, name, dev) == "ok"
    assert _transitions(guests, name, dev) == t0, "state changed under bidirectional load"
    # inbound traffic cut before the guest's NIC, the guest keeps sending
    guests.ssh(peer, f"tc qdisc add dev {peer_dev} root netem loss 100%", check=True)
    try:
        took = _wait_state(guests, name, dev, "rx_silent", 30)
        assert took <= (STALL + 1) * INTERVAL_MS / 1000 + SLACK_S, took
    finally:
        guests.ssh(peer, f"tc qdisc del dev {peer_dev} root", check=True)
    _wait_state(guests, name, dev, "ok", (STALL + 1) * INTERVAL_MS / 1000 + SLACK_S)
    guests.ssh(name, "pkill -x ping; true")


@pytest.mark.parametrize("name", GUESTS)
def test_tx_stalled_with_paused_peer(guests: Lab, name: str) -> None:
    """`name` blasts UDP over its link while the peer guest is paused. The link
    is QEMU's stream netdev (TCP over loopback): once the loopback socket
    buffers are full, QEMU stops draining `name`'s virtio TX ring, the ring
    fills, virtio_net stops the queue and no completion happens any more:
    tx_stalled after stall_intervals samples; ok again after resume. Both
    guests are clients of the lab's link relay, which passes the peer's
    back-pressure on (a guest on QEMU's server end froze instead)."""
    dev, peer, _ = LINK[name]
    load(guests, name, interval_ms=INTERVAL_MS, stall_intervals=STALL)
    addr = _peer_addr(guests, name)
    # a permanent neighbour entry: ARP must not expire while the peer sleeps
    guests.ssh(name, f"ping -c 1 -W 2 {addr} >/dev/null; ip neigh replace {addr} lladdr "
               f"$(ip neigh show {addr} | awk '{{print $5}}') dev {dev} nud permanent",
               check=True)
    # SO_SNDBUFFORCE: with the default 208 KB send buffer the socket blocks
    # after ~90 datagrams awaiting TX completion, before the 256-entry ring
    # is full, and the queue never stops (seen: tx flat, txq_stopped 0)
    flood = ("import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
             "s.setsockopt(socket.SOL_SOCKET,32,64<<20)\n"
             f"b=bytes(1400)\nwhile True:\n  try: s.sendto(b,('{addr}',9))\n"
             "  except OSError: time.sleep(0.001)\n")
    guests.ssh(name, f"cat >/root/vpsnet-flood.py <<'EOF'\n{flood}EOF\n"
               "nohup python3 /root/vpsnet-flood.py >/dev/null 2>&1 &", check=True)
    try:
        assert health(guests, name, dev) == "ok"
        guests.pause(peer)
        try:
            took = _wait_state(guests, name, dev, "tx_stalled", 120)
            m = metrics(guests, name)
            stopped = series(m, "vpsnet_txq_stopped", device=dev)
            print(f"{name} {dev}: tx_stalled {took:.1f}s after pausing {peer}; "
                  f"txq_stopped {stopped}")
            assert any(stopped.values()), stopped
            # still stalled a few samples later: no completions while paused
            time.sleep(3 * INTERVAL_MS / 1000)
            assert health(guests, name, dev) == "tx_stalled"
        finally:
            guests.resume(peer)
        took = _wait_state(guests, name, dev, "ok", 60)
        print(f"{name} {dev}: ok {took:.1f}s after resuming {peer}")
        # the flood still fills the ring and may stop the queue again for a
        # moment (seen in CI): stop it, then every queue must wake up
        guests.ssh(name, "pkill -f '[v]psnet-flood'; true")
        wait_for(f"{name} {dev} queues awake",
                 lambda: not any(series(metrics(guests, name), "vpsnet_txq_stopped",
                                        device=dev).values()), 10)
    finally:
        guests.ssh(name, f"pkill -f '[v]psnet-flood'; ip neigh del {addr} dev {dev}; true")


@pytest.mark.parametrize("name", GUESTS)
def test_hot_unplug_and_replug(guests: Lab, name: str) -> None:
    """eth1 in both guests: aws61's 4-queue tap NIC, gcp612's link NIC."""
    dev = "eth1"
    nic = next(n for n in guests.spec.guest(name).nics if n.index == 1)
    load(guests, name, interval_ms=INTERVAL_MS)
    mark = dmesg_mark(guests, name, "hotplug")
    n0 = value(metrics(guests, name), "vpsnet_devices_attached")
    guests.unplug(name, dev)
    try:
        wait_for("detach", lambda: value(metrics(guests, name), "vpsnet_devices_attached")
                 == n0 - 1, 30)
        assert not series(metrics(guests, name), "vpsnet_link_up", device=dev)
    finally:
        guests.plug(name, dev)
    wait_for("re-attach", lambda: value(metrics(guests, name), "vpsnet_devices_attached")
             == n0, 60)
    channels = f" && ethtool -L {dev} combined {nic.queues}" if nic.queues > 1 else ""
    guests.ssh(name, f"ip link set {dev} up && ip addr replace {nic.address} dev {dev}"
               f"{channels}", check=True)
    _wait_state(guests, name, dev, "ok", 10)
    m = metrics(guests, name)
    rx_queues = series(m, "vpsnet_queue_packets_total", device=dev, direction="rx")
    assert len(rx_queues) == nic.queues
    log = dmesg_since(guests, name, mark)
    assert any(f" {dev} " in ln and "vpsnet: detached" in ln for ln in log), log
    assert any(f" {dev}: vpsnet: attached" in ln for ln in log), log
    # Health transitions are logged at warn level by design; after the re-plug
    # eth1 sends (IPv6 ND/MLD) while the tap's host side sends nothing, so a
    # real "health ok -> rx_silent" may appear (seen in the full run). Those
    # are reports, not faults: anything else at warn or above fails.
    bad = [ln for ln in dmesg_since(guests, name, mark, "emerg,alert,crit,err,warn")
           if "vpsnet" in ln and "vpsnet: health " not in ln]
    assert not bad
