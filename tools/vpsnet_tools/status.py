"""vpsnet-status: health and per-queue drops from /proc/net/vpsnet/metrics.

With --samples N it is the rollout's health gate: it reads the metrics until N
consecutive samples are healthy (the expected version loaded, at least
--min-devices attached, every device ok) or --timeout passes.

With --next-boot it is the reboot gate: the kernel the host boots next (GRUB's
default or one-time entry, else the newest /boot/vmlinuz-*) must have a vpsnet
module that modprobe finds and that will load on it (vpsnet-abi check).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from vpsnet_tools import __version__
from vpsnet_tools.cliargs import CONTROL_RE, finite

DEFAULT_FILE = "/proc/net/vpsnet/metrics"
EXIT_OK = 0
EXIT_UNHEALTHY = 1
EXIT_NO_MODULE = 2
EXIT_BAD_INPUT = 3


@dataclass
class Queue:
    queue: int
    direction: str
    packets: int | None = None
    bytes: int | None = None
    drops: int | None = None


@dataclass
class Device:
    netns: str
    device: str
    driver: str
    link_up: bool = False
    state: str = "unknown"
    flaps: int = 0
    transitions: int = 0
    queues: list[Queue] = field(default_factory=list)


@dataclass
class Status:
    version: str = ""
    abi: str = ""
    devices: list[Device] = field(default_factory=list)


def _key(labels: dict[str, str]) -> tuple[str, str, str]:
    return (labels["netns"], labels["device"], labels["driver"])


def parse_metrics(text: str) -> Status:
    """Build a Status from the exposition text (prometheus_client's parser)."""
    st = Status()
    devs: dict[tuple[str, str, str], Device] = {}
    queues: dict[tuple[tuple[str, str, str], int, str], Queue] = {}

    def dev(labels: dict[str, str]) -> Device:
        k = _key(labels)
        if k not in devs:
            devs[k] = Device(netns=k[0], device=k[1], driver=k[2])
        return devs[k]

    def queue(labels: dict[str, str]) -> Queue:
        k = (_key(labels), int(labels["queue"]), labels["direction"])
        if k not in queues:
            queues[k] = Queue(queue=k[1], direction=k[2])
            dev(labels).queues.append(queues[k])
        return queues[k]

    qfields = {
        "vpsnet_queue_packets_total": "packets",
        "vpsnet_queue_bytes_total": "bytes",
        "vpsnet_queue_drops_total": "drops",
    }
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            lb = s.labels
            if s.name == "vpsnet_info":
                st.version, st.abi = lb.get("version", ""), lb.get("abi", "")
            elif s.name == "vpsnet_link_up":
                dev(lb).link_up = s.value == 1
            elif s.name == "vpsnet_link_flaps_total":
                dev(lb).flaps = int(s.value)
            elif s.name == "vpsnet_health_transitions_total":
                dev(lb).transitions = int(s.value)
            elif s.name == "vpsnet_health_state":
                if s.value == 1:
                    dev(lb).state = lb["state"]
                else:
                    dev(lb)
            elif s.name in qfields:
                setattr(queue(lb), qfields[s.name], int(s.value))
    for d in devs.values():
        d.queues.sort(key=lambda q: (q.direction, q.queue))
    st.devices = sorted(devs.values(), key=lambda d: (d.netns, d.device))
    return st


def _fmt(v: int | None) -> str:
    return "-" if v is None else str(v)


def _table(hdr: tuple[str, ...], rows: list[tuple[str, ...]], indent: str = "") -> list[str]:
    widths = [max(len(r[i]) for r in [hdr, *rows]) for i in range(len(hdr))]
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [hdr, *rows]
    ]


def render_table(st: Status) -> str:
    """A readable table: one row per device, then its per-queue counters."""
    lines = [f"vpsnet {st.version} (abi {st.abi}): {len(st.devices)} device(s)"]
    if not st.devices:
        return "\n".join(lines)
    lines += _table(
        ("DEVICE", "DRIVER", "NETNS", "LINK", "STATE", "FLAPS", "TRANSITIONS"),
        [
            (
                d.device,
                d.driver,
                d.netns,
                "up" if d.link_up else "down",
                d.state,
                str(d.flaps),
                str(d.transitions),
            )
            for d in st.devices
        ],
    )
    for d in st.devices:
        if not d.queues:
            continue
        lines += ["", f"{d.device} ({d.driver}) queues:"]
        lines += _table(
            ("QUEUE", "PACKETS", "BYTES", "DROPS"),
            [
                (f"{q.direction}{q.queue}", _fmt(q.packets), _fmt(q.bytes), _fmt(q.drops))
                for q in d.queues
            ],
            indent="  ",
        )
    return "\n".join(lines)


def to_json(st: Status) -> dict[str, Any]:
    return asdict(st)


def read_status(path: Path) -> tuple[Status | None, int, str]:
    """The parsed metrics, or None with an exit code and the reason."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, EXIT_NO_MODULE, (
            f"{path} not found: is the vpsnet module loaded? (modprobe vpsnet)")
    except OSError as e:
        return None, EXIT_NO_MODULE, f"cannot read {path}: {e.strerror}"
    try:
        return parse_metrics(text), EXIT_OK, ""
    except (ValueError, KeyError) as e:
        return None, EXIT_BAD_INPUT, f"{path}: unparsable metrics: {e}"


def sample_problems(st: Status, expect_version: str | None, min_devices: int) -> list[str]:
    """Why one sample is not healthy (empty: healthy)."""
    problems = []
    if expect_version is not None and st.version != expect_version:
        loaded = st.version or "unknown"
        problems.append(f"loaded version is {loaded!r}, expected {expect_version!r}")
    if len(st.devices) < min_devices:
        problems.append(f"{len(st.devices)} device(s) attached, expected at least {min_devices}")
    problems += [f"{d.device} ({d.driver}) is {d.state}" for d in st.devices if d.state != "ok"]
    return problems


@dataclass
class GateResult:
    healthy: bool
    samples: int
    consecutive: int
    reason: str
    status: Status | None


def gate(path: Path, samples: int, interval: float, timeout: float,
         expect_version: str | None, min_devices: int,
         clock: Any = time.monotonic, sleep: Any = time.sleep) -> GateResult:
    """Sample until `samples` consecutive healthy samples, or until `timeout`."""
    deadline = clock() + timeout
    taken = consecutive = 0
    reason = "no sample taken"
    st: Status | None = None
    while True:
        st, _, err = read_status(path)
        taken += 1
        problems = [err] if st is None else sample_problems(st, expect_version, min_devices)
        if problems:
            consecutive, reason = 0, "; ".join(problems)
        else:
            consecutive += 1
            if consecutive >= samples:
                return GateResult(True, taken, consecutive, "", st)
        if clock() + interval > deadline:
            return GateResult(False, taken, consecutive, reason, st)
        sleep(interval)

# --------------------------------------------------------------------------- next boot

EXIT_NEXT_BOOT_UNKNOWN = 3  # the next kernel, or what it needs, cannot be read

Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def version_key(release: str) -> tuple[Any, ...]:
    """Order kernel releases as `sort -V` does for Debian's grub (10_linux):
    digit runs by value, the rest as text (6.12.117+deb12 > 6.1.0-57 > 6.1.0-9)."""
    parts = re.split(r"(\d+)", release)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def installed_kernels(root: Path) -> list[str]:
    """Releases with a /boot/vmlinuz-<release>, oldest first."""
    boot = root / "boot"
    found = [p.name[len("vmlinuz-"):] for p in boot.glob("vmlinuz-*")
             if p.is_file() and not p.name.endswith((".old", ".bak", ".dpkg-tmp"))]
    return sorted(found, key=version_key)


def read_grubenv(path: Path) -> dict[str, str]:
    """KEY=value lines of a grubenv block ('#' padding ignored)."""
    env: dict[str, str] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return env
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k.strip()] = v.strip()
    return env


@dataclass
class GrubEntry:
    title: str
    ident: str
    kernel: str | None  # release from the entry's `linux` line
    children: list[GrubEntry] = field(default_factory=list)
    submenu: bool = False


_ENTRY_RE = re.compile(r"""^\s*(menuentry|submenu)\s+(['"])(.*?)\2(.*)\{\s*$""")
_ID_RE = re.compile(r"""\$menuentry_id_option\s+(['"])(.*?)\1|--id[= ](['"]?)(\S+?)\3(?:\s|$)""")
_LINUX_RE = re.compile(r"^\s*linux(?:efi|16)?\s+(\S+)")


def parse_grub_cfg(text: str) -> tuple[list[GrubEntry], list[str]]:
    """The menu tree (entries and submenus) and every `set default=` value, in order."""
    top: list[GrubEntry] = []
    stack: list[GrubEntry] = []
    depth: list[bool] = []  # for each open '{': does it open an entry?
    defaults: list[str] = []
    for line in text.splitlines():
        m = _ENTRY_RE.match(line)
        if m:
            idm = _ID_RE.search(m.group(4))
            ident = (idm.group(2) or idm.group(4)) if idm else ""
            e = GrubEntry(m.group(3).replace("'\\''", "'"), ident, None,
                          submenu=m.group(1) == "submenu")
            (stack[-1].children if stack else top).append(e)
            stack.append(e)
            depth.append(True)
            continue
        d = re.match(r"""^\s*set\s+default=(['"]?)(.*?)\1\s*$""", line)
        if d:
            defaults.append(d.group(2))
        lm = _LINUX_RE.match(line)
        if lm and stack and stack[-1].kernel is None:
            name = lm.group(1).rsplit("/", 1)[-1]
            if name.startswith("vmlinuz-"):
                stack[-1].kernel = name[len("vmlinuz-"):]
        stripped = line.strip()
        if stripped.endswith("{") and not m:
            depth.append(False)  # if/function/... block inside or outside an entry
        if stripped.startswith("}") and depth and depth.pop() and stack:
            stack.pop()
    return top, defaults


def resolve_grub_default(entries: list[GrubEntry], default: str) -> GrubEntry | None:
    """The entry GRUB boots for `default`: an index, a title or an id per menu
    level, levels separated by '>' (GRUB_DEFAULT="1>2", titles, ids)."""
    level = entries
    chosen: GrubEntry | None = None
    for part in (default or "0").split(">"):
        part = part.strip()
        pick = None
        if part.isdigit():
            pick = level[int(part)] if int(part) < len(level) else None
        else:
            pick = next((e for e in level if part in (e.title, e.ident)), None)
            if pick is None:  # an id or title may name an entry inside a submenu
                pick = next((c for e in level for c in e.children if part in (c.title, c.ident)),
                            None)
        if pick is None:
            return None
        chosen, level = pick, pick.children
    if chosen is not None and chosen.submenu:
        return chosen.children[0] if chosen.children else None
    return chosen


def _bls_kernel(root: Path, entry_id: str) -> str | None:
    """EL's BootLoaderSpec entries: saved_entry names /boot/loader/entries/<id>.conf."""
    conf = root / "boot/loader/entries" / f"{entry_id}.conf"
    try:
        text = conf.read_text(errors="replace")
    except OSError:
        return None
    m = re.search(r"^linux\s+(\S+)", text, re.M)
    name = m.group(1).rsplit("/", 1)[-1] if m else ""
    return name[len("vmlinuz-"):] if name.startswith("vmlinuz-") else None


def next_boot_kernel(root: Path = Path("/")) -> tuple[str | None, str]:
    """The kernel release the host boots next and how that was found.

    GRUB's one-time entry (grubenv next_entry, grub-reboot), else its default
    (grub.cfg `set default=`, `${saved_entry}` read from grubenv); when that
    cannot be read, the newest /boot/vmlinuz-* by version, which is entry 0 of
    Debian's generated menu.
    """
    kernels = installed_kernels(root)
    for grub_dir in (root / "boot/grub", root / "boot/grub2"):
        cfg = grub_dir / "grub.cfg"
        if not cfg.is_file():
            continue
        env = read_grubenv(grub_dir / "grubenv")
        try:
            entries, defaults = parse_grub_cfg(cfg.read_text(errors="replace"))
        except OSError:
            continue
        default = next((d for d in defaults if "next_entry" not in d), "0")
        how = f"{cfg.relative_to(root)} default {default!r}"
        if env.get("next_entry"):
            default, how = env["next_entry"], f"grubenv next_entry {env['next_entry']!r}"
        elif "saved_entry" in default:
            default = env.get("saved_entry") or "0"
            how = f"grubenv saved_entry {default!r}"
        entry = resolve_grub_default(entries, default)
        if entry is not None and entry.kernel:
            return entry.kernel, f"GRUB: {how} -> {entry.title!r}"
        bls = _bls_kernel(root, default)
        if bls:
            return bls, f"GRUB (BootLoaderSpec): {how}"
    if kernels:
        return kernels[-1], f"newest of {len(kernels)} /boot/vmlinuz-* (no readable GRUB default)"
    return None, f"no {root / 'boot'}/vmlinuz-* and no readable GRUB configuration"


def find_module(kernel: str, root: Path = Path("/"), run: Runner | None = None) -> str | None:
    """The vpsnet.ko modprobe would load for `kernel` (modinfo -k K -n; under
    `root` with -b), or None. Without modinfo, modules.dep is read as modprobe does."""
    argv = ["modinfo", "-k", kernel, "-n", "vpsnet"]
    if root != Path("/"):
        argv[1:1] = ["-b", str(root)]
    try:
        r = (run or _run)(argv)
    except FileNotFoundError:
        dep = root / "lib/modules" / kernel / "modules.dep"
        try:
            text = dep.read_text(errors="replace")
        except OSError:
            return None
        for line in text.splitlines():
            mod = line.split(":", 1)[0].strip()
            if re.search(r"(^|/)vpsnet\.ko(\.(xz|gz|zst))?$", mod):
                return str(Path("/lib/modules") / kernel / mod) if not mod.startswith("/") else mod
        return None
    path = r.stdout.strip().splitlines()[0] if r.stdout.strip() else ""
    if r.returncode != 0 or not path.startswith("/"):
        return None  # not found, or (builtin)
    if root != Path("/") and path.startswith(str(root).rstrip("/") + "/"):
        path = path[len(str(root).rstrip("/")):]  # modinfo -b prints the root too
    return path


def _kernel_files(root: Path, kernel: str) -> dict[str, str | None]:
    """Where K's config and exported symbols are, under root: the build tree,
    /boot, and the vpsnet-kmod package's copy (a host without headers)."""
    trees = [root / "lib/modules" / kernel / "build", root / "usr/src" / f"linux-headers-{kernel}"]
    kdir = next((d for d in trees if d.is_dir()), trees[0])

    def first(paths: list[Path]) -> str | None:
        return next((str(p) for p in paths if p.is_file()), None)

    return {
        "kdir": str(kdir),
        "config": first([kdir / ".config", root / "boot" / f"config-{kernel}",
                         root / "lib/modules" / kernel / "config"]),
        "symvers": first([kdir / "Module.symvers",
                          root / "usr/share/vpsnet/kmod" / kernel / "Module.symvers",
                          root / "boot" / f"symvers-{kernel}.gz",
                          root / "lib/modules" / kernel / "symvers.gz"]),
        "moddir": str(root / "lib/modules" / kernel),
    }


@dataclass
class NextBoot:
    ok: bool
    kernel: str | None
    how: str
    running: str
    module: str | None = None
    reason: str = ""
    findings: list[dict[str, str]] = field(default_factory=list)
    code: int = EXIT_OK


def check_next_boot(root: Path = Path("/"), run: Runner | None = None) -> NextBoot:
    """Will the kernel that boots next load a vpsnet module (vpsnet-abi check)?"""
    from vpsnet_tools import abi  # pyelftools: only this path needs it

    running = os.uname().release
    kernel, how = next_boot_kernel(root)
    if kernel is None:
        return NextBoot(False, None, how, running, reason=f"cannot tell the next kernel: {how}",
                        code=EXIT_NEXT_BOOT_UNKNOWN)
    res = NextBoot(False, kernel, how, running)
    res.module = find_module(kernel, root, run)
    if res.module is None:
        res.reason = (f"the next boot kernel {kernel} ({how}) has no vpsnet module "
                      f"(modinfo -k {kernel} -n vpsnet finds none): install "
                      f"vpsnet-kmod-{kernel}, or its headers for vpsnet-dkms")
        res.code = EXIT_UNHEALTHY
        return res
    ko_path = res.module if root == Path("/") else str(root / res.module.lstrip("/"))
    files = _kernel_files(root, kernel)
    try:
        ko = abi.read_ko(ko_path)
        k = abi.load_kernel(kernel, kdir=files["kdir"], symvers=files["symvers"],
                            config=files["config"], moddir=files["moddir"])
    except abi.InputError as e:
        res.reason = f"cannot check vpsnet for the next boot kernel {kernel}: {e}"
        res.code = EXIT_NEXT_BOOT_UNKNOWN
        return res
    checks = abi.check_module(ko, k)
    res.findings = [asdict(f) for f in checks]
    fails = [f"{f.check}: {f.message}" for f in checks if f.status == abi.FAIL]
    if fails:
        res.reason = (f"vpsnet {res.module} will not load on the next boot kernel {kernel} "
                      f"({how}): {'; '.join(fails)}")
        res.code = EXIT_UNHEALTHY
        return res
    res.ok = True
    res.reason = f"vpsnet {ko.first('version') or '?'} ({res.module}) loads on {kernel} ({how})"
    return res


# The module's version as the roles pass it (roles/vpsnet_inputs VERSION_RE):
# full-string match, so a trailing newline or a control character is refused.
_VERSION_RE = re.compile(
    r"[0-9]{1,9}(\.[0-9]{1,9}){1,3}([~+][0-9A-Za-z.~+]{1,64})?(-[0-9A-Za-z.~+]{1,32})?")


def argument_problems(args: argparse.Namespace) -> list[str]:
    """Every bad argument, named with its value (escaped); empty: all good. Checked
    before anything is read, whatever the mode."""
    ranges: tuple[tuple[str, float | None, float, float, str], ...] = (
        ("--samples", args.samples, 1, 100_000, ">= 1 and <= 100000"),
        ("--interval", args.interval, 0, 3600, "> 0 and <= 3600"),
        ("--timeout", args.timeout, 0, 86_400, ">= 0 and <= 86400"),
        ("--min-devices", args.min_devices, 0, 100_000, ">= 0 and <= 100000"),
    )
    bad = [f"{name} {value!r} must be {rule}" for name, value, low, high, rule in ranges
           if value is not None and not (low <= value <= high
                                         and (name != "--interval" or value > 0))]
    if args.expect_version is not None and not _VERSION_RE.fullmatch(args.expect_version):
        bad.append(f"--expect-version {args.expect_version!r} is not a version (e.g. 1.0.0)")
    for name, value in (("--file", args.file), ("--root", args.root)):
        # a newline in a path would also split the one-line error that names it
        if not value or CONTROL_RE.search(value):
            bad.append(f"{name} {value!r} must be a path without control characters")
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="vpsnet-status", description="Show vpsnet NIC health and per-queue drops.",
        epilog="exit codes: 0 healthy, 1 a device is not ok (or the gate failed; --next-boot: "
        "no loadable vpsnet for the next kernel), 2 module not loaded, 3 unparsable metrics or "
        "bad arguments (--next-boot: cannot tell)",
    )
    ap.add_argument("--file", default=DEFAULT_FILE, help=f"metrics file (default {DEFAULT_FILE})")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    g = ap.add_argument_group("health gate (for rollouts)")
    g.add_argument("--samples", type=finite(int), metavar="N",
                   help="wait for N consecutive healthy samples (enables the gate)")
    g.add_argument("--interval", type=finite(float), default=1.0, metavar="S",
                   help="seconds between samples (default 1)")
    g.add_argument("--timeout", type=finite(float), default=60.0, metavar="S",
                   help="give up after S seconds (default 60)")
    g.add_argument("--expect-version", metavar="V", help="the loaded module must be version V")
    g.add_argument("--min-devices", type=finite(int), default=0, metavar="M",
                   help="at least M devices must be attached (default 0)")
    n = ap.add_argument_group("next-boot gate (before a reboot)")
    n.add_argument("--next-boot", action="store_true",
                   help="check the kernel the host boots next has a vpsnet module that loads "
                        "(exit 0 yes, 1 no, 3 cannot tell)")
    n.add_argument("--root", default="/", metavar="DIR",
                   help="read /boot and /lib/modules under DIR (default /)")
    args = ap.parse_args(argv)
    bad = argument_problems(args)
    if bad:
        print("vpsnet-status: " + "; ".join(bad), file=sys.stderr)
        return EXIT_BAD_INPUT
    path = Path(args.file)

    if args.next_boot:
        nb = check_next_boot(Path(args.root))
        if args.json:
            print(json.dumps(asdict(nb), indent=2, sort_keys=True))
        elif nb.ok:
            print(f"vpsnet-status: {nb.reason}")
        if not nb.ok:
            print(f"vpsnet-status: {nb.reason}", file=sys.stderr)
        return nb.code

    if args.samples is not None:
        res = gate(path, args.samples, args.interval, args.timeout,
                   args.expect_version, args.min_devices)
        report = {"healthy": res.healthy, "samples": res.samples,
                  "consecutive": res.consecutive, "reason": res.reason,
                  "status": to_json(res.status) if res.status else None}
        if args.json:
            print(json.dumps(report, indent=2, sort_keys=True))
        elif res.healthy:
            print(f"vpsnet-status: healthy for {res.consecutive} consecutive samples")
        if not res.healthy:
            print(f"vpsnet-status: not healthy after {res.samples} samples: {res.reason}",
                  file=sys.stderr)
        return EXIT_OK if res.healthy else EXIT_UNHEALTHY

    st, code, err = read_status(path)
    if st is None:
        print(f"vpsnet-status: {err}", file=sys.stderr)
        return code
    if args.json:
        print(json.dumps(to_json(st), indent=2, sort_keys=True))
    else:
        print(render_table(st))
    unhealthy = any(d.state != "ok" for d in st.devices)
    return EXIT_UNHEALTHY if unhealthy else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
