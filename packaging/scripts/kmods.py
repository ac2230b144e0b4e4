#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Build once, sign once: vpsnet.ko for every kernel of the matrix, packaged.

  kmods.py --version V --driver-src DIR --dist DIST --key KEY --cert CERT
           [--only RELEASE,...] [--jobs N]

For each kernel release of the matrix (packaging/scripts/kernel-matrix.py),
in parallel (--jobs, default the number of cores):
  1. build vpsnet.ko from a private copy of DIR against that kernel's headers
     (configure probes + kbuild, W=1; a compiler warning fails the kernel),
  2. strip debug info and sign it with the fleet key (the kernel's sign-file,
     its CONFIG_MODULE_SIG_HASH; KEY may be a pkcs11: URI),
  3. vpsnet-abi check it against that kernel (vermagic, CRCs, signer = CERT),
  4. package vpsnet-kmod-<release> as .deb (dh) and .rpm (rpmbuild) into DIST.
Every kernel is tried; the run fails at the end naming each kernel that did
not build, check or package. DIST/build/kmod-V/report.json keeps per-kernel
timings and verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vpsnet_tools.abi import parse_config  # PYTHONPATH=tools (packaging/Makefile)

HERE = Path(__file__).resolve().parent
PACKAGING = HERE.parent
TEMPLATES = PACKAGING / "kmod"
# Debian's tool chain, never a venv's python3 first on PATH.
SYSPATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class KmodError(Exception):
    pass


@dataclass
class Result:
    series: str
    release: str
    ok: bool = False
    failed_step: str = ""
    error: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    signer: str = ""
    packages: list[str] = field(default_factory=list)


def _run(cmd: list[str], log: Path, cwd: Path | None = None,
         env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False,
                          env={**os.environ, "PATH": SYSPATH, **(env or {})})
    with log.open("a") as out:
        out.write(f"+ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise KmodError(f"{' '.join(cmd[:4])} ... exit {proc.returncode}: " + " | ".join(tail))
    return proc.stdout + proc.stderr


def _render(text: str, values: dict[str, str]) -> str:
    for k, v in values.items():
        text = text.replace(f"@{k}@", v)
    return text


def imported_symvers(kdir: Path, ko_undefined: set[str]) -> str:
    """The lines of K's Module.symvers that the module imports: what vpsnet-abi
    check needs on a host that has the module but not the headers."""
    lines = (kdir / "Module.symvers").read_text().splitlines()
    return "".join(f"{line}\n" for line in lines
                   if len(line.split("\t")) > 1 and line.split("\t")[1] in ko_undefined)


class Builder:
    def __init__(self, version: str, driver_src: Path, dist: Path, key: str, cert: Path,
                 epoch: int) -> None:
        self.version, self.driver_src, self.dist = version, driver_src, dist
        self.key, self.cert, self.epoch = key, cert, epoch
        self.work = dist / "build" / f"kmod-{version}"

    def kdir(self, release: str) -> Path:
        kdir = Path(f"/lib/modules/{release}/build")
        if not (kdir / "Makefile").is_file():
            kdir = Path(f"/usr/src/linux-headers-{release}")
        if not (kdir / "Makefile").is_file():
            raise KmodError(f"no headers for {release}: apt-get install linux-headers-{release}")
        return kdir

    def one(self, series: str, release: str) -> Result:
        res = Result(series, release)
        d = self.work / release
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        log = d / "build.log"
        step = "headers"
        try:
            kdir = self.kdir(release)
            step = "build"
            t = time.monotonic()
            shutil.copytree(self.driver_src, d / "src")
            out = _run(["make", "-C", str(d / "src"), f"KVER={release}", f"KDIR={kdir}"], log)
            warnings = [line for line in out.splitlines() if "warning:" in line or "error:" in line]
            if warnings:
                raise KmodError("compiler warnings: " + " | ".join(warnings[:5]))
            res.seconds["build"] = round(time.monotonic() - t, 1)

            step = "sign"
            t = time.monotonic()
            payload = d / "payload"
            payload.mkdir()
            ko = payload / "vpsnet.ko"
            shutil.copy2(d / "src" / "vpsnet.ko", ko)
            _run(["strip", "--strip-debug", str(ko)], log)
            hash_algo = parse_config((kdir / ".config").read_text()).get(
                "CONFIG_MODULE_SIG_HASH", "sha256")
            _run([str(kdir / "scripts" / "sign-file"), hash_algo, self.key, str(self.cert),
                  str(ko)], log)
            res.seconds["sign"] = round(time.monotonic() - t, 1)

            step = "check"
            t = time.monotonic()
            check = self.check(ko, release, kdir, log)
            res.signer = check.get("signature", {}).get("signer", "")
            undefined = set(check.get("imports", []))
            (payload / "Module.symvers").write_text(imported_symvers(kdir, undefined))
            (payload / f"vpsnet-kmod-{release}.conf").write_text(
                "# vpsnet-kmod: the prebuilt, fleet-signed module wins over a DKMS build for\n"
                f"# this kernel (updates/dkms). Removing the package hands it back to DKMS.\n"
                f"override vpsnet {release} updates\n")
            res.seconds["check"] = round(time.monotonic() - t, 1)

            step = "package"
            t = time.monotonic()
            res.packages = [self.deb(release, d, log), self.rpm(release, d, log)]
            res.seconds["package"] = round(time.monotonic() - t, 1)
            res.ok = True
        except (KmodError, OSError) as e:
            res.failed_step, res.error = step, str(e)
        return res

    def check(self, ko: Path, release: str, kdir: Path, log: Path) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, "-m", "vpsnet_tools.abi", "check", str(ko), "--kernel", release,
             "--kdir", str(kdir), "--trusted-cert", str(self.cert), "--json"],
            capture_output=True, text=True, check=False)
        with log.open("a") as out:
            out.write(f"+ vpsnet-abi check\n{proc.stdout}{proc.stderr}")
        try:
            doc: dict[str, Any] = json.loads(proc.stdout)
        except json.JSONDecodeError as e:
            raise KmodError(f"vpsnet-abi check failed: {proc.stderr.strip()}") from e
        bad = [f"{f['check']}: {f['message']}" for f in doc.get("findings", [])
               if f["status"] == "fail"]
        sig = doc.get("signature", {})
        if not isinstance(sig, dict) or not sig.get("trusted"):
            bad.append(f"signature: not signed by {self.cert} ({sig})")
        if proc.returncode != 0 or bad:
            raise KmodError("vpsnet-abi check: " + "; ".join(bad or [proc.stderr.strip()]))
        return doc

    def deb(self, release: str, d: Path, log: Path) -> str:
        pkg = d / "deb"
        shutil.copytree(TEMPLATES / "debian", pkg / "debian")
        shutil.copytree(d / "payload", pkg / "payload")
        values = {"KVER": release, "VERSION": self.version}
        for tmpl in (pkg / "debian").glob("*.in"):
            tmpl.with_suffix("").write_text(_render(tmpl.read_text(), values))
            tmpl.unlink()
        date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(self.epoch))
        (pkg / "debian" / "changelog").write_text(
            f"vpsnet-kmod-{release} ({self.version}) bookworm; urgency=medium\n\n"
            f"  * vpsnet {self.version} prebuilt for {release}.\n\n"
            f" -- vpsnet maintainers <vpsnet@example.org>  {date}\n")
        (pkg / "debian" / "install").rename(pkg / "debian" / f"vpsnet-kmod-{release}.install")
        for script in ("postinst", "postrm"):
            (pkg / "debian" / script).rename(pkg / "debian" / f"vpsnet-kmod-{release}.{script}")
        _run(["dpkg-buildpackage", "--no-sign", "-b", "-uc", "-us"], log, cwd=pkg,
             env={"SOURCE_DATE_EPOCH": str(self.epoch)})
        name = f"vpsnet-kmod-{release}_{self.version}_amd64.deb"
        shutil.copy2(d / name, self.dist / name)
        return name

    def rpm(self, release: str, d: Path, log: Path) -> str:
        top = d / "rpmbuild"
        (top / "SOURCES").mkdir(parents=True)
        for f in (d / "payload").iterdir():
            shutil.copy2(f, top / "SOURCES" / f.name)
        values = {"KVER": release, "VERSION": self.version,
                  "CHANGELOG_DATE": time.strftime("%a %b %d %Y", time.gmtime(self.epoch))}
        spec = top / "vpsnet-kmod.spec"
        spec.write_text(_render((TEMPLATES / "vpsnet-kmod.spec.in").read_text(), values))
        _run(["rpmbuild", "--quiet", "-bb", "--nodeps", "--target", "x86_64",
              "--define", f"_topdir {top}",
              "--define", "_binary_payload w9.gzdio",
              "--define", "use_source_date_epoch_as_buildtime 1",
              "--define", "clamp_mtime_to_source_date_epoch 1", str(spec)], log,
             env={"SOURCE_DATE_EPOCH": str(self.epoch)})
        name = f"vpsnet-kmod-{release}-{self.version}-1.x86_64.rpm"
        shutil.copy2(top / "RPMS" / "x86_64" / name, self.dist / name)
        return name


def matrix(only: str) -> list[tuple[str, str]]:
    cmd = [str(HERE / "kernel-matrix.py"), *(["--only", only] if only else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env={**os.environ, "PATH": SYSPATH})
    if proc.returncode != 0:
        raise KmodError(proc.stderr.strip())
    pairs = [tuple(line.split()) for line in proc.stdout.splitlines() if line.strip()]
    return [(p[0], p[1]) for p in pairs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--version", required=True)
    ap.add_argument("--driver-src", type=Path, required=True)
    ap.add_argument("--dist", type=Path, required=True)
    ap.add_argument("--key", required=True, help="PEM private key or pkcs11: URI")
    ap.add_argument("--cert", type=Path, required=True)
    ap.add_argument("--only", default="", help="comma-separated releases of the matrix")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    started = time.monotonic()
    try:
        kernels = matrix(args.only)
    except KmodError as e:
        print(f"kmods.py: {e}", file=sys.stderr)
        return 1
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
    b = Builder(args.version, args.driver_src.resolve(), args.dist.resolve(), args.key,
                args.cert.resolve(), epoch)
    b.work.mkdir(parents=True, exist_ok=True)
    for stale in args.dist.glob(f"vpsnet-kmod-*[_-]{args.version}[_-]*"):
        stale.unlink()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda k: b.one(*k), kernels))
    total = round(time.monotonic() - started, 1)
    (b.work / "report.json").write_text(json.dumps(
        {"version": args.version, "seconds": total, "jobs": args.jobs,
         "kernels": [asdict(r) for r in results]}, indent=2) + "\n")
    failed = [r for r in results if not r.ok]
    for r in results:
        state = "ok" if r.ok else f"FAILED at {r.failed_step}"
        print(f"kmods: {r.release}: {state} {r.seconds}", file=sys.stderr)
    if failed:
        for r in failed:
            print(f"kmods.py: vpsnet {args.version} for kernel {r.release}: {r.failed_step} "
                  f"failed: {r.error} (log {b.work / r.release / 'build.log'})", file=sys.stderr)
        return 1
    print(f"kmods: vpsnet {args.version}: {len(results)} kernels built, checked, signed and "
          f"packaged in {total}s ({args.jobs} jobs)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
