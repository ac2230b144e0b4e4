"""`vpsnet-lab`: build guest images and run a local fleet of cloud-like VMs."""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
from pathlib import Path

from . import ansible_env, image, inventory, specparse
from .fieldcheck import CONTROL_RE
from .fleet import DEFAULT_BOOT_TIMEOUT, NIC_RE, SSH_KEY, Lab
from .paths import INVENTORY, KERNEL_HELP, KERNEL_SERIES, STATE, LabError, kernel_syntax_ok
from .spec import FIRMWARES, NAME_RE, SpecError

# Read inside a guest: what the machine itself says it is (DMI, metadata).
IDENTIFY_SCRIPT = r"""
d=/sys/class/dmi/id
printf 'kernel=%s\nsys_vendor=%s\nproduct_name=%s\nbios_vendor=%s\n' "$(uname -r)" \
  "$(cat $d/sys_vendor)" "$(cat $d/product_name)" "$(cat $d/bios_vendor)"
m=http://169.254.169.254
if grep -q 'Amazon EC2' $d/sys_vendor; then
  t=$(curl -sf -m 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' $m/latest/api/token)
  for k in placement/region placement/availability-zone instance-type instance-id; do
    printf 'metadata.%s=%s\n' "$k" \
      "$(curl -sf -m 2 -H "X-aws-ec2-metadata-token: $t" $m/latest/meta-data/$k)"
  done
else
  for k in zone machine-type id; do
    printf 'metadata.%s=%s\n' "$k" \
      "$(curl -sf -m 2 -H 'Metadata-Flavor: Google' $m/computeMetadata/v1/instance/$k)"
  done
fi
"""


MAX_PROBLEMS = 20  # lines of a refused spec shown; the first ones say enough


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_image(args: argparse.Namespace) -> int:
    series = list(KERNEL_SERIES) if args.kernel == "all" else [args.kernel]
    for s in series:
        img = image.build(s, say=_say, force=args.force, firmware=args.firmware)
        print(f"{s}\t{img.release}\t{img.directory}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    lab_spec = specparse.load(args.spec)  # read bounded (specfile.py), then parsed once
    lab = Lab.up(lab_spec, state_dir=args.state, boot_timeout=args.timeout, say=_say)
    if not args.no_inventory:
        out = inventory.write(lab.spec, Path(args.inventory))
        _say(f"inventory written to {out}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    Lab(args.state).down(say=_say)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    lab = Lab(args.state)
    rows = lab.status()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no lab is up")
        return 0
    accel = lab.state.get("accel", {})
    print(f"accelerator: {accel.get('accel', 'tcg')} ({accel.get('reason', 'not recorded')})")
    cols = ("name", "cloud", "region", "zone", "kernel", "ssh_port", "pid", "state", "firmware")
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.upper().ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))
    return 0 if all(r["state"] == "running" for r in rows) else 1


def cmd_ssh(args: argparse.Namespace) -> int:
    g = Lab(args.state).spec.guest(args.name)
    argv = ["ssh", "-i", str(SSH_KEY), "-p", str(g.ssh_port), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "root@127.0.0.1"]
    if args.command:
        argv.append(shlex.join(args.command))
    os.execvp("ssh", argv)
    return 1  # not reached


def cmd_inventory(args: argparse.Namespace) -> int:
    out = inventory.write(Lab(args.state).spec, Path(args.output))
    print(out.read_text(), end="")
    return 0


def cmd_link(args: argparse.Namespace) -> int:
    Lab(args.state).link(args.name, args.nic, args.updown == "up")
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    lab = Lab(args.state)
    lab.pause(args.name) if args.cmd == "pause" else lab.resume(args.name)
    return 0


def cmd_ansible_env(args: argparse.Namespace) -> int:
    print(ansible_env.shell_exports(), end="")
    return 0


def identify(lab: Lab, name: str) -> dict[str, str]:
    out = lab.ssh(name, IDENTIFY_SCRIPT, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def cmd_identify(args: argparse.Namespace) -> int:
    lab = Lab(args.state)
    found = {g.name: identify(lab, g.name) for g in lab.spec.guests}
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        for name, facts in found.items():
            print(f"{name}:")
            for key, value in facts.items():
                print(f"  {key:32} {value}")
    return 0


# --- argument types: every value checked by the parser, before any state is read
# or written; a refusal is argparse's one `error: argument X: ...` line, exit 2.


def _path(text: str) -> str:
    # "" would be the current directory; a control character would end up in a
    # file name and split the one-line error naming it
    if not text or CONTROL_RE.search(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a file name")
    return text


def _state_dir(text: str) -> Path:
    return Path(_path(text))


def _guest_name(text: str) -> str:
    # the spec's own rule: a name becomes a directory under the state dir
    if not NAME_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a guest name ({NAME_RE.pattern})")
    return text


def _nic(text: str) -> str:
    if not NIC_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a NIC (eth0, eth1, ...)")
    return text


def _kernel(text: str) -> str:
    if text != "all" and not kernel_syntax_ok(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a kernel: all, {KERNEL_HELP}")
    return text


def _timeout(text: str) -> float:
    try:
        if CONTROL_RE.search(text):  # float() would skip "\r" or "\x1c" around the number
            raise ValueError(text)
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    # nan compares false everywhere: a boot wait with it would never end
    if not (math.isfinite(value) and 0 < value <= 86_400):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds in (0, 86400]")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vpsnet-lab", description=__doc__)
    p.add_argument("--state", type=_state_dir, default=STATE,
                   help=f"lab state directory (default {STATE}, or $VPSNET_LAB_STATE)")
    sub = p.add_subparsers(dest="cmd", required=True)

    img = sub.add_parser("image", help="guest images")
    img_sub = img.add_subparsers(dest="image_cmd", required=True)
    b = img_sub.add_parser("build", help="build (or reuse the cached) image for a kernel")
    b.add_argument("--kernel", default="all", metavar="KERNEL", type=_kernel,
                   help=f"all (default), {KERNEL_HELP}")
    b.add_argument("--firmware", choices=FIRMWARES, default="bios",
                   help="uefi-secureboot: a GPT disk whose ESP boots shim, grub and the "
                   "signed kernel")
    b.add_argument("--force", action="store_true", help="rebuild even when cached")
    b.set_defaults(func=cmd_image)

    up = sub.add_parser("up", help="boot the guests of a lab spec and wait for SSH")
    up.add_argument("spec", type=_path, help="lab spec YAML, e.g. lab/specs/default.yml")
    up.add_argument("--timeout", type=_timeout, default=DEFAULT_BOOT_TIMEOUT,
                    help="seconds to wait for every guest's SSH")
    up.add_argument("--inventory", type=_path, default=str(INVENTORY),
                    help="where to write the inventory")
    up.add_argument("--no-inventory", action="store_true")
    up.set_defaults(func=cmd_up)

    sub.add_parser("down", help="stop every guest and helper, remove namespaces").set_defaults(
        func=cmd_down)
    st = sub.add_parser("status", help="guests and their run state")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    ssh = sub.add_parser("ssh", help="SSH into a guest, or run a command there")
    ssh.add_argument("name", type=_guest_name)
    ssh.add_argument("command", nargs=argparse.REMAINDER)
    ssh.set_defaults(func=cmd_ssh)

    inv = sub.add_parser("inventory", help="write the Ansible inventory of the running lab")
    inv.add_argument("--output", type=_path, default=str(INVENTORY))
    inv.set_defaults(func=cmd_inventory)

    link = sub.add_parser("link", help="set a guest NIC's link (carrier) up or down")
    link.add_argument("name", type=_guest_name)
    link.add_argument("nic", type=_nic, help="eth0, eth1, ...")
    link.add_argument("updown", choices=["up", "down"])
    link.set_defaults(func=cmd_link)

    for verb in ("pause", "resume"):
        v = sub.add_parser(verb, help=f"{verb} a guest's vCPUs")
        v.add_argument("name", type=_guest_name)
        v.set_defaults(func=cmd_pause)

    aenv = sub.add_parser("ansible-env",
                          help="shell exports that run ansible-playbook under Mitogen")
    aenv.set_defaults(func=cmd_ansible_env)

    ident = sub.add_parser("identify", help="what each guest says it is (DMI, metadata)")
    ident.add_argument("--json", action="store_true")
    ident.set_defaults(func=cmd_identify)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SpecError as exc:
        for problem in exc.problems[:MAX_PROBLEMS]:
            print(f"vpsnet-lab: {exc.source}: {problem}", file=sys.stderr)
        if len(exc.problems) > MAX_PROBLEMS:
            print(f"vpsnet-lab: {exc.source}: ... and {len(exc.problems) - MAX_PROBLEMS} more "
                  "problems", file=sys.stderr)
        return 2
    except LabError as exc:
        print(f"vpsnet-lab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
