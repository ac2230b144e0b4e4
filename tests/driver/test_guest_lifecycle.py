"""vpsnet.ko load/unload in real guests: bad parameters, 200 cycles under load."""

from __future__ import annotations

import threading
import time

import pytest
from vpsnet_guest_helpers import GUESTS, KO, METRICS, dmesg_mark, dmesg_since, loaded, unload

from vpsnet_lab.fleet import Lab, Result

pytestmark = pytest.mark.lab
BAD = [("interval_ms=0", "interval_ms"), ("stall_intervals=1000", "stall_intervals"),
       ('drivers=""', "drivers")]
CYCLES = 200


@pytest.mark.parametrize("name", GUESTS)
@pytest.mark.parametrize(("arg", "param"), BAD)
def test_bad_parameter_refuses_load(guests: Lab, name: str, arg: str, param: str) -> None:
    unload(guests, name)
    mark = dmesg_mark(guests, name, f"bad {arg}")
    r = guests.ssh(name, f"insmod {KO} {arg}")
    assert r.rc != 0
    assert not loaded(guests, name)
    lines = [ln for ln in dmesg_since(guests, name, mark) if "vpsnet" in ln]
    assert len(lines) == 1, lines
    assert f"invalid parameter {param}=" in lines[0], lines


def test_load_unload_cycles_under_traffic_and_readers(guests: Lab) -> None:
    """Both guests at once: traffic on the guest link and a reader looping on
    the metrics file while the module is loaded and unloaded CYCLES times (one
    shell loop per guest). The kernel log of the run is captured with
    `dmesg -W` (200 cycles x ~8 lines would overrun the ring buffer)."""
    results: dict[str, Result] = {}
    for g in GUESTS:
        unload(guests, g)
        peer = next(n for n in guests.spec.guest(g).nics if n.link).peer_address
        assert peer
        guests.ssh(g, f"printf 'while :; do cat {METRICS} >/dev/null 2>&1; done\\n' "
                   ">/root/vpsnet-reader.sh; rm -f /root/cycles-dmesg.log; "
                   "nohup dmesg -W >/root/cycles-dmesg.log 2>&1 & "
                   f"nohup ping -q -i 0.01 {peer.split('/')[0]} >/dev/null 2>&1 & "
                   "nohup sh /root/vpsnet-reader.sh >/dev/null 2>&1 & sleep 1", check=True)
    script = (f"n=0; for i in $(seq {CYCLES}); do insmod {KO} interval_ms=100 || "
              "{ echo load $i; exit 1; }; rmmod vpsnet || { echo unload $i; exit 2; }; "
              "test -d /sys/module/vpsnet && { echo still loaded $i; exit 3; }; "
              "n=$((n+1)); done; echo cycles $n")

    def cycle(g: str) -> None:
        results[g] = guests.ssh(g, script, timeout=1200)

    threads = [threading.Thread(target=cycle, args=(g,)) for g in GUESTS]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{CYCLES} cycles on both guests in {time.monotonic() - t0:.0f}s")
    for g in GUESTS:
        guests.ssh(g, "pkill -f '[v]psnet-reader'; pkill -x ping; sleep 1; pkill -x dmesg; true")
        assert results[g].rc == 0, (g, results[g].stdout, results[g].stderr)
        assert f"cycles {CYCLES}" in results[g].stdout, results[g].stdout
        assert not loaded(guests, g)
        log = guests.ssh(g, "cat /root/cycles-dmesg.log", check=True).stdout.splitlines()
        bad = [ln for ln in log if any(w in ln for w in (
            "Oops", "WARNING", "BUG", "Call Trace", "general protection", "refcount_t"))]
        assert not bad, (g, bad[:20])
        assert sum("vpsnet: unloaded" in ln for ln in log) == CYCLES, (g, log[-20:])
