"""vpsnet-status --next-boot, the reboot gate: the kernel the host boots next
(GRUB's default or one-time entry, else the newest /boot/vmlinuz-*) must have a
vpsnet module that modprobe finds and that will load on it (vpsnet-abi check).
status.py imports it.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vpsnet_tools.status_metrics import EXIT_OK, EXIT_UNHEALTHY

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
    # imported here: pyelftools, which only this path needs, is slow to import
    from vpsnet_tools.abi_check import FAIL, check_module
    from vpsnet_tools.abi_kernel import load_kernel
    from vpsnet_tools.abi_module import read_ko
    from vpsnet_tools.manifest import InputError

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
        ko = read_ko(ko_path)
        k = load_kernel(kernel, kdir=files["kdir"], symvers=files["symvers"],
                        config=files["config"], moddir=files["moddir"])
    except InputError as e:
        res.reason = f"cannot check vpsnet for the next boot kernel {kernel}: {e}"
        res.code = EXIT_NEXT_BOOT_UNKNOWN
        return res
    checks = check_module(ko, k)
    res.findings = [asdict(f) for f in checks]
    fails = [f"{f.check}: {f.message}" for f in checks if f.status == FAIL]
    if fails:
        res.reason = (f"vpsnet {res.module} will not load on the next boot kernel {kernel} "
                      f"({how}): {'; '.join(fails)}")
        res.code = EXIT_UNHEALTHY
        return res
    res.ok = True
    res.reason = f"vpsnet {ko.first('version') or '?'} ({res.module}) loads on {kernel} ({how})"
    return res
