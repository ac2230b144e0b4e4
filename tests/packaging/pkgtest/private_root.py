"""dpkg and rpm for real, with their maintainer scripts and the real dkms, in a
private mount namespace whose /usr, /etc, /var/lib and /var/log are overlays:
the host's files are never written. The host's own running kernel has no
headers, which is the "headers missing" case. Headers of any other kernel left
on the host (an older ABI after a point release) are hidden, so DKMS builds for
exactly the kernels under test. For the host-side install tests."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pkgtest.host import Result, run

# /var/lib whole: dpkg, dkms and the kernel hook's records (/var/lib/vpsnet).
OVERLAID = ("/usr", "/etc", "/var/lib", "/var/log")
DPKG_QUERY = "dpkg-query -W -f='${db:Status-Abbrev} ${Version}' vpsnet-dkms 2>/dev/null"
DPKG = "dpkg --log=/dev/null --force-depends"


def running_kernel_has_headers() -> bool:
    return Path(f"/lib/modules/{os.uname().release}/build/include").exists()


class PrivateRoot:
    def __init__(self, state: Path, kernels: list[str]) -> None:
        self.state = state
        self.kernels = kernels
        state.mkdir(parents=True, exist_ok=True)

    def __call__(self, script: str) -> Result:
        s = self.state
        mounts = []
        for d in OVERLAID:
            if Path(d).is_dir():
                mounts.append(
                    f'mkdir -p "{s}/up{d}" "{s}/work{d}" && mount -t overlay overlay '
                    f'-o "lowerdir={d},upperdir={s}/up{d},workdir={s}/work{d}" "{d}"'
                )
            else:
                mounts.append(f'mkdir -p "{s}/up{d}" && mount --bind "{s}/up{d}" "{d}"')
        prelude = "\n".join(
            [
                "set -e",
                *mounts,
                f'export mok_signing_key="{s}/mok.key" mok_certificate="{s}/mok.pub"',
                # /lib is /usr/lib here, so this removes the links in the overlay only.
                'for b in /lib/modules/*/build; do case "$b" in '
                + "|".join(f"/lib/modules/{k}/build" for k in self.kernels)
                + ') ;; *) rm -f "$b" ;; esac; done',
                "set +e",
            ]
        )
        proc = run(["unshare", "--mount", "--propagation", "private", "bash", "-c",
                    prelude + "\n" + script], check=False)
        return Result(proc.returncode, proc.stdout, proc.stderr)


def module_versions(root: PrivateRoot) -> dict[str, str]:
    """kernel -> version of the vpsnet.ko DKMS installed for it."""
    out = root(
        'for f in /lib/modules/*/updates/dkms/vpsnet.ko*; do [ -e "$f" ] || continue; '
        'echo "$f $(modinfo -F version "$f")"; done'
    ).stdout
    return {line.split("/")[3]: line.split()[1] for line in out.splitlines()}


@dataclass
class Step(Result):
    """A script's result and the package state right after it."""

    status: str = ""  # what the story's query printed
    dkms: str = ""  # `dkms status vpsnet`
    modules: dict[str, str] = field(default_factory=dict)  # module_versions()
    srcdirs: list[str] = field(default_factory=list)  # /usr/src/vpsnet-*


@dataclass
class Story:
    """Scripts run one after the other in one private root, each followed by a
    snapshot (Step) kept under its name; QUERY prints the package's status."""

    root: PrivateRoot
    query: str
    broken_version: str = ""  # the vpsnet-dkms built from a broken source, if any
    steps: dict[str, Step] = field(default_factory=dict)

    def step(self, name: str, script: str) -> None:
        r, root = self.root(script), self.root
        self.steps[name] = Step(
            r.rc, r.stdout, r.stderr,
            status=root(self.query).stdout.strip(),
            dkms=root("dkms status vpsnet 2>/dev/null").stdout,
            modules=module_versions(root),
            srcdirs=sorted(root("ls -d /usr/src/vpsnet-* 2>/dev/null").stdout.split()),
        )

    def __getitem__(self, name: str) -> Step:
        return self.steps[name]
