"""vpsnet-abi: the module's interface manifest, ABI diffs and "will it load on K" checks.

    vpsnet-abi manifest KO|JSON|loaded
    vpsnet-abi diff OLD NEW [--json]          exit 0 compatible/additive, 3 breaking, 2 bad input
    vpsnet-abi check KO --kernel K [--json]   exit 0 loads, 1 will not load, 2 bad input

The command line only: manifest.py reads manifests, abi_diff.py compares them,
abi_module.py, abi_kernel.py and abi_check.py answer `check`. The names in
__all__ stay importable from here (packaging/scripts/kmods.py, older tests).
See tools/README.md for the verdict rules.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict
from pathlib import Path

from vpsnet_tools import __version__
from vpsnet_tools.abi_check import FAIL, check_module, imported_symbols, signature_report
from vpsnet_tools.abi_diff import ADDITIVE, BREAKING, diff_manifests
from vpsnet_tools.abi_kernel import (
    load_kernel,
    parse_config,
    secure_boot_enabled,
    signatures_enforced,
)
from vpsnet_tools.abi_module import read_ko
from vpsnet_tools.cliargs import CONTROL_RE, one_line
from vpsnet_tools.manifest import InputError, load_manifest

__all__ = ["ADDITIVE", "BREAKING", "diff_manifests", "main", "parse_config",
           "secure_boot_enabled"]

PROG = "vpsnet-abi"

# exit codes
EXIT_OK = 0  # diff: compatible or additive; check: loads
EXIT_WONT_LOAD = 1  # check: will not load on the kernel
EXIT_USAGE = 2  # bad arguments, unreadable or malformed input
EXIT_BREAKING = 3  # diff: breaking


def _cmd_manifest(args: argparse.Namespace) -> int:
    doc = load_manifest(args.module)[0]
    print(json.dumps(doc, indent=2))
    return EXIT_OK


def _cmd_diff(args: argparse.Namespace) -> int:
    old, old_src = load_manifest(args.old)
    new, new_src = load_manifest(args.new)
    res = diff_manifests(old, new)
    if args.json:
        doc = res.to_json()
        doc["old"]["source"], doc["new"]["source"] = old_src, new_src
        print(json.dumps(doc, indent=2))
    else:
        print(f"{res.verdict}: {old_src} ({res.old_version}, ABI {res.old_abi_major}) -> "
              f"{new_src} ({res.new_version}, ABI {res.new_abi_major})")
        for f in res.findings:
            print(f"  {f.severity}: {f.message}")
        if res.undeclared_break:
            print(f"  breaking: incompatible changes without an ABI major bump "
                  f"(abi_major stays {res.new_abi_major})")
    return EXIT_BREAKING if res.verdict == BREAKING else EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    ko = read_ko(args.module)
    k = load_kernel(args.kernel, kdir=args.kdir, symvers=args.symvers, config=args.config,
                    moddir=args.modules_dir)
    signature = signature_report(ko, args.trusted_cert)
    findings = check_module(ko, k, signature)
    loads = not any(f.status == FAIL for f in findings)
    enforced, why = signatures_enforced(k)
    signature.update(enforced=enforced, enforced_why=why)
    if args.json:
        print(json.dumps({"module": str(args.module), "kernel": args.kernel,
                          "release": k.release, "loads": loads, "sources": k.sources,
                          "signature": signature,
                          "imports": imported_symbols(ko),
                          "findings": [asdict(f) for f in findings]}, indent=2))
    else:
        print(f"{'loads' if loads else 'will not load'}: {args.module} on {args.kernel}")
        print(f"  signer: {signature['signer'] or '(unsigned)'}; signatures "
              f"{'enforced' if enforced else 'not enforced'} ({why})")
        for f in findings:
            print(f"  {f.status}: {f.check}: {f.message}")
    return EXIT_OK if loads else EXIT_WONT_LOAD


# A kernel release as uname -r prints it (6.1.0-57-cloud-amd64,
# 5.14.0-427.13.1.el9_4.x86_64; at most 64 bytes, the kernel's UTS length). It
# becomes a file name under /lib/modules, /boot and /usr/share/vpsnet/kmod: no
# '/', no '..' (first character alphanumeric), no control characters.
_KERNEL_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+~-]{0,63}")


def _kernel_arg(text: str) -> str:
    if not _KERNEL_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a kernel release (uname -r form)")
    return text


def _path_arg(text: str) -> str:
    """A file name: not empty (Path('') is the current directory), no control
    characters (they would also split the one-line error that names the file)."""
    if not text or CONTROL_RE.search(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a file name")
    return text


def _cert_arg(text: str) -> Path:
    return Path(_path_arg(text))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="vpsnet.ko interface manifest, ABI diff and load check.",
        epilog="exit codes: 0 ok (diff: compatible or additive; check: loads), "
               "1 check: will not load, 2 usage or unreadable input, 3 diff: breaking",
    )
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("manifest", help="print the interface manifest compiled into a module")
    p.add_argument("module", type=_path_arg, help="vpsnet.ko, a manifest JSON file, or 'loaded'")
    p.set_defaults(func=_cmd_manifest)

    p = sub.add_parser("diff", help="compatible / additive / breaking between two manifests")
    p.add_argument("old", type=_path_arg,
                   help="vpsnet.ko, manifest JSON, 'loaded' (/proc/net/vpsnet/manifest), "
                        "/sys/module/vpsnet or -")
    p.add_argument("new", type=_path_arg, help="same forms as OLD")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=_cmd_diff)

    p = sub.add_parser("check", help="will the module load on kernel K")
    p.add_argument("module", type=_path_arg, help="a .ko file (.ko.xz/.ko.gz too)")
    p.add_argument("--kernel", required=True, metavar="K", type=_kernel_arg,
                   help="kernel release (uname -r form)")
    p.add_argument("--kdir", type=_path_arg,
                   help="K's build tree (default /lib/modules/K/build, then "
                        "/usr/src/linux-headers-K)")
    p.add_argument("--symvers", type=_path_arg,
                   help="Module.symvers to use (default: build tree, "
                        "/boot/symvers-K.gz, /usr/share/vpsnet/kmod/K/Module.symvers)")
    p.add_argument("--config", type=_path_arg,
                   help="kernel config to use (default: build tree, /boot/config-K)")
    p.add_argument("--modules-dir", type=_path_arg,
                   help="K's module directory (default /lib/modules/K)")
    p.add_argument("--trusted-cert", type=_cert_arg, metavar="FILE",
                   help="X.509 certificate (PEM or DER) the module must be signed with, "
                        "e.g. the fleet's; any other signer or none fails the check")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=_cmd_check)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc: int = args.func(args)
        return rc
    except InputError as e:
        print(f"{PROG}: {one_line(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # never a traceback for bad input; still exit as "cannot answer"
        print(f"{PROG}: {type(e).__name__}: {one_line(str(e))}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
