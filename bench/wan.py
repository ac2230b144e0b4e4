"""WAN benchmark: goodput and p99 RTT under load between two lab guests over an
emulated long-haul link, for Debian's defaults, TuneD's network-throughput
profile and the vpsnet_tune role, side by side in one run.

Run as root: `.venv/bin/python bench/wan.py [--runs 3] [--seconds 20] [--ipv6 clean]`;
boots its own lab (.cache/lab-wan, base_port 19522), always tears it down, writes
bench/results/wan.json and bench/results/wan.png. `--ipv6 PROFILE` also runs that
profile over the link's IPv6 addresses (summary key PROFILE-ipv6). See bench/README.md.
The parts: wan_link.py (guests, link, profiles), wan_role.py (the vpsnet
configuration from the role), wan_guests.py (configurations applied, runs),
wan_measure.py (what a run reads), wan_summary.py (summary, method, chart).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from wan_guests import CONFIGS, CONTROL_CONFIG, Bench, baseline_keys, say
from wan_link import BANDWIDTH_MBIT, GUESTS, IPV6_SUFFIX, PROFILES, SERVER_ADDR6, legs, spec
from wan_role import vpsnet_qdisc
from wan_summary import chart, method, summarise

from vpsnet_lab.fleet import Lab
from vpsnet_lab.paths import CACHE, TOP

RESULTS = TOP / "bench" / "results"
STATE = CACHE / "lab-wan"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--base-port", type=int, default=19522)
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--link-mbit", type=float, default=None,
                        help="bottleneck rate of the emulated link (netem rate, every profile); "
                             "default: none, the TCG guests' CPU limits it; results go to "
                             "wan-<N>mbit.json/png instead of wan.json/png")
    parser.add_argument("--fq-maxrate-mbit", type=int, default=0,
                        help="vpsnet_tune_fq_maxrate_mbit for the vpsnet configuration: fq "
                             "caps every flow at this rate; results get a -maxrate<N> suffix")
    parser.add_argument("--controls", action="store_true",
                        help="with --link-mbit: also run vpsnet with cubic instead of BBR, and "
                             "a second ping that goes round the bottleneck queue; results get "
                             "a -controls suffix")
    parser.add_argument("--ipv6", metavar="PROFILE", choices=list(PROFILES), default=None,
                        help="also run this link profile over the link's IPv6 addresses "
                             f"({SERVER_ADDR6}: iperf3 -6, ping -6); reported as "
                             f"PROFILE{IPV6_SUFFIX} in the summary")
    parser.add_argument("--with-ansible", action="store_true",
                        help="run the vpsnet_tune role with ansible-playbook to get its sysctl "
                             "file (default: rendered from the role's defaults, tasks and "
                             "template, the same file)")
    args = parser.parse_args()
    unknown = [p for p in args.profiles.split(",") if p not in PROFILES]
    if unknown:
        parser.error(f"--profiles: unknown {', '.join(unknown)} (known: {', '.join(PROFILES)})")
    if args.controls and not args.link_mbit:
        parser.error("--controls needs --link-mbit: without a rate there is no bottleneck "
                     "queue to go round")
    return args


def run_legs(b: Bench, args: argparse.Namespace, plan: list[tuple[str, str, bool]],
             configs: tuple[str, ...], setup: dict[str, Any]) -> list[dict[str, Any]]:
    """Every leg's runs, configurations interleaved and rotated run by run."""
    runs: list[dict[str, Any]] = []
    for label, profile, ipv6 in plan:
        rtt, loss = PROFILES[profile]
        b.restore()
        b.netem(rtt, loss, args.link_mbit)
        for run in range(args.runs):
            shift = run % len(configs)
            order = configs[shift:] + configs[:shift]  # interleaved, rotated
            for config in order:
                b.restore()
                b.apply(config, profile)
                setup["states"].setdefault(config, {g: b.state(g) for g in GUESTS})
                m = b.measure(ipv6)
                m.update(profile=label, link_profile=profile, ip_version=6 if ipv6 else 4,
                         config=config, run=run)
                say(f"{label} run {run} {config}: {m['goodput_mbit']} Mbit/s, "
                    f"p99 {m['p99_rtt_ms']} ms (steady {m['p99_rtt_steady_ms']} ms)")
                runs.append(m)
        b.restore()
    b.netem(0, 0, None)
    return runs


def main() -> int:
    args = parse_args()
    plan = legs(args.profiles.split(","), args.ipv6)
    link_profiles = list(dict.fromkeys(p for _, p, _ in plan))
    configs = (*CONFIGS, CONTROL_CONFIG) if args.controls else CONFIGS
    qdisc = vpsnet_qdisc(args.fq_maxrate_mbit, BANDWIDTH_MBIT)
    started = time.monotonic()
    Lab(STATE).down(say=say)
    lab = Lab.up(spec(args.base_port), "bench/wan.py", state_dir=STATE, say=say)
    runs: list[dict[str, Any]] = []
    setup: dict[str, Any] = {}
    try:
        b = Bench(lab, args.seconds, qdisc, args.controls)
        b.record_baseline(baseline_keys())
        b.install_qdisc_script()
        if args.ipv6:
            b.check_ipv6()
        b.vpsnet_conf = (b.plan_vpsnet(link_profiles) if args.with_ansible
                         else b.plan_from_role_files(link_profiles))
        setup = {
            "guests": {g: b.sh(g, "uname -r").strip() for g in GUESTS},
            "baseline_sysctls": b.baseline,
            "vpsnet_sysctl_files": b.vpsnet_conf,
            "states": {},
        }
        runs = run_legs(b, args, plan, configs, setup)
    finally:
        lab.down(say=say)
    summary = summarise(runs, [label for label, _, _ in plan], configs)
    doc = {
        "summary": summary,
        "method": method(args, plan, qdisc),
        "setup": setup,
        "runs": runs,
        "wall_seconds": round(time.monotonic() - started),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"wan-{args.link_mbit:g}mbit" if args.link_mbit else "wan"
    if args.fq_maxrate_mbit:
        name += f"-maxrate{args.fq_maxrate_mbit:g}"
    if args.controls:
        name += "-controls"
    (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    chart(summary, RESULTS / f"{name}.png",
          f"a {args.link_mbit:g} Mbit/s link" if args.link_mbit else "CPU-bound link", configs)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
