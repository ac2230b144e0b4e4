"""vpsnet.ko load/unload in real guests: bad parameters, 200 cycles under load."""

from __future__ import annotations

import threading

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
    """Both guests at once: traffic on every lab NIC and a reader looping on the
    metrics file while the module is loaded and unloaded CYCLES times."""
    results: dict[str, Result] = {}
    marks = {}
    for g in GUESTS:
        unload(guests, g)
        marks[g] = dmesg_mark(guests, g, "cycles")
        peer = next(n for n in guests.spec.guest(g).nics if n.link).peer_address
        assert peer
        guests.ssh(g, f"nohup ping -q -i 0.01 {peer.split('/')[0]} >/dev/null 2>&1 & "
                   f"nohup sh -c 'exec -a vpsnet-reader sh -c \"while :; do "
                   f"cat {METRICS} >/dev/null 2>&1; done\"' >/dev/null 2>&1 &", check=True)
    script = (f"for i in $(seq {CYCLES}); do insmod {KO} interval_ms=100 || "
              "{ echo load $i; exit 1; }; rmmod vpsnet || { echo unload $i; exit 2; }; done")

    def cycle(g: str) -> None:
        results[g] = guests.ssh(g, script, timeout=900)

    threads = [threading.Thread(target=cycle, args=(g,)) for g in GUESTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g in GUESTS:
        guests.ssh(g, "pkill -f vpsnet-reader; pkill -x ping; true")
        assert results[g].rc == 0, (g, results[g].stdout, results[g].stderr)
        assert not loaded(guests, g)
        log = dmesg_since(guests, g, marks[g])
        bad = [ln for ln in log if any(w in ln for w in (
            "Oops", "WARNING", "BUG", "Call Trace", "general protection", "refcount_t"))]
        assert not bad, (g, bad[:20])
        assert sum("vpsnet: unloaded" in ln for ln in log) == CYCLES, g
