"""The prebuilt-or-DKMS decision, the package set and version order of the
vpsnet_driver role (filters vpsnet.fleet.vpsnet_driver_*), shared with vpsnet_upgrade
(tested in tests/integration/roles/test_vpsnet_driver_method.py and
test_vpsnet_upgrade_direction.py; the role's inputs are checked by tasks/validate.yml)."""

from __future__ import annotations

import shlex
from typing import Any

METHODS = ("auto", "prebuilt", "dkms")
DKMS_PACKAGE = "vpsnet-dkms"
TOOLS_PACKAGE = "vpsnet-tools"


def kmod_package(kernel: str) -> str:
    """The prebuilt module package for one kernel release."""
    return f"vpsnet-kmod-{kernel}"


def parse_available(text: str) -> dict[str, list[str]]:
    """Versions the repositories offer, from `apt-cache madison PKG...` or
    `dnf repoquery --qf '%{name} | %{version}' PKG...` (both 'name | version | ...')."""
    out: dict[str, list[str]] = {}
    for line in (text or "").splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) >= 2 and fields[0] and fields[1]:
            versions = out.setdefault(fields[0], [])
            if fields[1] not in versions:
                versions.append(fields[1])
    return out


def choose_method(params: dict[str, Any]) -> dict[str, Any]:
    """prebuilt when the repository has vpsnet-kmod-<kernel> at the version
    (and it was not refused), dkms otherwise; an error when prebuilt was
    required and is not there.

    A check-mode run on a fresh host has no repository configured yet (the
    index knows no vpsnet-tools at all): it cannot know, so it assumes the
    requested method, and for auto DKMS, the larger change, instead of failing.
    """
    requested = params.get("requested", "auto")
    version = str(params.get("version", ""))
    kernel = str(params.get("kernel", ""))
    available = params.get("available")
    if not isinstance(available, dict):
        available = parse_available(str(available or ""))
    pkg = kmod_package(kernel)
    offered = available.get(pkg, [])
    result: dict[str, Any] = {"method": "dkms", "kmod_package": pkg, "error": "", "note": "",
                              "offered": offered}
    if requested not in METHODS:
        result["error"] = f"vpsnet_driver_method={requested!r} is not one of {', '.join(METHODS)}"
        return result
    repo_unknown = not available.get(TOOLS_PACKAGE)
    if requested == "dkms":
        return result
    if version in offered:
        result["method"] = "prebuilt"
        return result
    if params.get("check_mode") and repo_unknown:
        result["method"] = "prebuilt" if requested == "prebuilt" else "dkms"
        result["note"] = (f"check mode: the package index knows no {TOOLS_PACKAGE} yet (repository "
                          f"not configured), assuming {result['method']} for kernel {kernel}")
        return result
    if requested == "prebuilt":
        has = f"it has {', '.join(offered)}" if offered else "it has none"
        result["error"] = (f"vpsnet_driver_method=prebuilt: the repository has no {pkg} at version "
                           f"{version} for the running kernel {kernel} ({has}); use "
                           "vpsnet_driver_method=auto or dkms, or publish that package")
    return result


def package_set(want: dict[str, Any]) -> dict[str, list[str]]:
    """What to remove, install (pinned) and remove after, so that exactly the
    wanted packages are installed: want = {dkms, kmod, tools: version or '',
    headers: bool (the running kernel's, for DKMS; never removed), kernel, os_family}.

    The running kernel's vpsnet-kmod goes first when unwanted: with the
    prebuilt module in updates/, DKMS would refuse (or, on RPM systems, move
    aside) the module it installs. vpsnet-dkms goes last, once the prebuilt
    module is in place, so the kernel always has a module file on disk.
    """
    sep = "=" if want.get("os_family", "Debian") == "Debian" else "-"
    kmod = kmod_package(str(want.get("kernel", "")))
    names = {"dkms": DKMS_PACKAGE, "kmod": kmod, "tools": TOOLS_PACKAGE}
    install = [f"{names[k]}{sep}{want[k]}" for k in ("kmod", "dkms", "tools") if want.get(k)]
    if want.get("headers") in (True, "True", "true") and want.get("dkms"):
        kernel = want.get("kernel", "")
        install.insert(0, f"linux-headers-{kernel}" if sep == "=" else f"kernel-devel-{kernel}")
    after = [names[k] for k in ("dkms", "tools") if not want.get(k)]
    return {"remove_first": [] if want.get("kmod") else [kmod], "install": install,
            "remove_after": after}


# apt-get as packages.yml's apt tasks run it, without a prompt, waiting for a busy dpkg
APT_GET = ("DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300 "
           "-o Dpkg::Options::=--force-confold")


def package_commands(pset: dict[str, list[str]], os_family: str = "Debian",
                     reload: bool = True) -> list[str]:
    """Shell commands (one per line) that do what tasks/packages.yml does with
    package_set's result PSET, then reload the module (RELOAD) or only unload it
    (no version to go back to): the host-side revert of a rollout step runs them
    when the controller is gone. apt takes the packages from its cache when they
    are there (vpsnet_upgrade fetches them before arming), so no network is needed."""
    if os_family == "Debian":
        remove = f"{APT_GET} purge"
        install = f"{APT_GET} --no-install-recommends --allow-downgrades install"
    elif os_family == "RedHat":
        remove = "dnf -y -q remove"
        install = "dnf -y -q --setopt=install_weak_deps=False install"
    else:
        raise ValueError(f"package_commands: os_family={os_family!r} (Debian or RedHat)")
    lines = []
    for cmd, key in ((remove, "remove_first"), (install, "install"), (remove, "remove_after")):
        names = [str(n) for n in pset.get(key) or []]
        if names:
            lines.append(" ".join([cmd, *map(shlex.quote, names)]))
    # one line: the revert runs each line on its own, a failed unload must not skip the load
    lines.append("modprobe -r vpsnet; modprobe vpsnet" if reload else "modprobe -r vpsnet")
    return lines


def restore_set(before: dict[str, Any], version: str) -> dict[str, Any]:
    """The want (for package_set) that puts back exactly the packages a host had
    (vpsnet_upgrade_probe's installed_dkms / installed_kmod / installed_tools), at
    `version`, the one it ran. No version: none. A module loaded with neither
    package installed (put there by hand) gets vpsnet-dkms and vpsnet-tools."""
    version = str(version or "")
    had = {k: bool(before.get(f"installed_{k}")) for k in ("dkms", "kmod", "tools")}
    if version and not had["dkms"] and not had["kmod"]:
        had = {"dkms": True, "kmod": False, "tools": True}
    want: dict[str, Any] = {k: version if had[k] and version else "" for k in had}
    want["headers"] = False  # a DKMS host had them; never installed by a rollback
    return want


def _order(c: str) -> int:
    """dpkg's character order: '~' before the end of the string, letters before
    other characters."""
    if c == "~":
        return -1
    if c.isdigit() or not c:
        return 0
    return ord(c) if c.isalpha() else ord(c) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's verrevcmp: alternating non-digit runs (by _order) and digit runs (by value)."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return -1 if ac < bc else 1
            i += i < len(a) and not a[i].isdigit()
            j += j < len(b) and not b[j].isdigit()
        di, dj = i, j
        while i < len(a) and a[i].isdigit():
            i += 1
        while j < len(b) and b[j].isdigit():
            j += 1
        na, nb = int(a[di:i] or 0), int(b[dj:j] or 0)
        if na != nb:
            return -1 if na < nb else 1
    return 0


def _split(version: str) -> tuple[int, str, str]:
    """epoch (before the first ':'), upstream, revision (after the last '-')."""
    epoch, colon, rest = version.strip().partition(":")
    if not colon:
        epoch, rest = "0", epoch
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = revision, ""
    if not epoch.isdigit():
        raise ValueError(f"bad epoch in version {version!r}")
    return int(epoch), upstream, revision


def version_compare(a: str, b: str) -> int:
    """-1, 0 or 1 as Debian orders the versions a and b ([epoch:]upstream[-revision],
    1.1.0~rc1 < 1.1.0 < 1.1.0+git3 < 1.1.1 < 1.10.0). For vpsnet's versions
    (vpsnet_inputs' version check) rpm orders them the same way."""
    if not isinstance(a, str) or not isinstance(b, str) or not a.strip() or not b.strip():
        raise ValueError(f"cannot compare versions {a!r} and {b!r}")
    ea, ua, ra = _split(a)
    eb, ub, rb = _split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def rollback_error(running: str | None, target: str) -> str:
    """Why a rollback from the version a host runs (loaded, else installed) to
    `target` is refused; '' when allowed: only to an older version, or to the
    same one (a re-run of a rollback that already reached it changes nothing)."""
    if not running:
        return (f"vpsnet_upgrade: rollback to {target}: the host runs no vpsnet (none loaded or "
                "installed), there is nothing to roll back; install it with deploy.yml")
    if version_compare(target, running) > 0:
        return (f"vpsnet_upgrade: rollback to {target} refused: it is newer than {running}, the "
                f"version the host runs; a rollback only goes to an older version (use deploy.yml "
                f"to upgrade to {target})")
    return ""


class FilterModule:
    """vpsnet_driver filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "vpsnet_driver_choose_method": choose_method,
            "vpsnet_driver_package_set": package_set,
            "vpsnet_driver_package_commands": package_commands,
            "vpsnet_driver_restore_set": restore_set,
            "vpsnet_driver_version_compare": version_compare,
            "vpsnet_driver_rollback_error": rollback_error,
        }
