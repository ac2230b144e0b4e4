"""Fast checks of packaging/ sources (no package build; see
tests/packaging/test_host_*.py for the real builds)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
PKG = TOP / "packaging"


def active_lines(text: str) -> str:
    return "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))


def test_version_lives_only_in_version_file() -> None:
    version = (TOP / "VERSION").read_text().strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    for path in PKG.rglob("*"):
        if path.is_file() and path.suffix not in {".md"}:
            assert version not in path.read_text(errors="replace"), path


def test_dkms_conf_template() -> None:
    conf = (PKG / "dkms.conf.in").read_text()
    active = active_lines(conf)
    assert 'PACKAGE_NAME="vpsnet"' in active
    assert 'PACKAGE_VERSION="@VERSION@"' in active
    assert 'AUTOINSTALL="yes"' in active
    assert 'DEST_MODULE_LOCATION[0]="/updates/dkms"' in active
    assert 'BUILT_MODULE_NAME[0]="vpsnet"' in active
    make = re.search(r"^MAKE\[0\]=(.*)$", active, re.M).group(1)
    assert "KVER=$kernelver" in make and "KDIR=$kernel_source_dir" in make
    assert "uname" not in active


def test_dkms_conf_parses_as_shell() -> None:
    subprocess.run(["bash", "-n", str(PKG / "dkms.conf.in")], check=True)


def test_debian_control() -> None:
    control = (PKG / "debian/control").read_text()
    assert "debhelper-compat (= 13)" in control
    assert "dh-sequence-dkms" in control
    stanzas = {
        m.group(1): m.group(0)
        for m in re.finditer(r"^Package: (\S+)\n(?:[^\n]+\n?)*", control, re.M)
    }
    assert set(stanzas) == {"vpsnet-dkms", "vpsnet-tools"}
    for stanza in stanzas.values():
        assert "Architecture: all" in stanza
    assert re.search(r"^Recommends:.*\bvpsnet-tools\b", stanzas["vpsnet-dkms"], re.M)
    assert "python3-prometheus-client" in stanzas["vpsnet-tools"]
    assert (PKG / "debian/source/format").read_text().strip() == "3.0 (native)"


def test_spec_scriptlets() -> None:
    spec = (PKG / "rpm/vpsnet.spec.in").read_text()
    assert re.search(r"^Version:\s+@VERSION@$", spec, re.M)
    assert "Requires(post): dkms" in spec and "Requires(preun): dkms" in spec
    sections = dict(
        re.findall(r"^%(post|preun|posttrans) -n vpsnet-dkms\n(.*?)(?=^%\w)", spec, re.M | re.S)
    )
    assert "--rpm_safe_upgrade" in sections["post"] and "dkms add" in sections["post"]
    assert "--rpm_safe_upgrade" in sections["preun"] and "dkms remove" in sections["preun"]
    assert "dkms install" in sections["posttrans"]
    assert "uname" not in active_lines(spec)
    assert "Recommends:     vpsnet-tools" in spec


def test_udev_rule() -> None:
    rule = (PKG / "udev/60-vpsnet.rules").read_text().replace("\\\n", " ")
    lines = [ln for ln in rule.splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1
    line = lines[0]
    for key in ('ACTION=="change"', 'SUBSYSTEM=="net"', 'ENV{VPSNET_STATE}=="?*"'):
        assert key in line
    run = re.search(r'RUN\+="([^"]*)"', line).group(1)
    assert run.startswith("/usr/bin/logger -t vpsnet ")
    assert "$env{VPSNET_STATE}" in run and "$env{VPSNET_PREV}" in run


@pytest.mark.parametrize("script", sorted(p.name for p in (PKG / "scripts").iterdir()))
def test_scripts_parse(script: str) -> None:
    path = PKG / "scripts" / script
    if script.endswith(".py"):
        compile(path.read_text(), str(path), "exec")
    else:
        subprocess.run(["bash", "-n", str(path)], check=True)


def _postinst(tmp_path: Path, common_rc: int) -> subprocess.CompletedProcess[str]:
    """Run vpsnet-dkms.postinst with a stand-in for /usr/lib/dkms/common.postinst."""
    fake = tmp_path / "common.postinst"
    fake.write_text(f'#!/bin/sh\necho common.postinst "$@"\nexit {common_rc}\n')
    fake.chmod(0o755)
    text = (PKG / "debian/vpsnet-dkms.postinst.in").read_text()
    text = text.replace("/usr/lib/dkms/common.postinst", str(fake))
    text = text.replace("@VERSION@", "9.8.7").replace("#DEBHELPER#", "")
    script = tmp_path / "postinst"
    script.write_text(text)
    return subprocess.run(["sh", str(script), "configure", ""], capture_output=True, text=True)


def test_postinst_survives_failed_dkms_build(tmp_path: Path) -> None:
    proc = _postinst(tmp_path, common_rc=10)
    assert proc.returncode == 0
    assert "ERROR: DKMS could not build or install vpsnet 9.8.7 (exit status 10)" in proc.stderr
    assert "common.postinst vpsnet 9.8.7 /usr/share/vpsnet-dkms" in proc.stdout


def test_postinst_quiet_on_success(tmp_path: Path) -> None:
    proc = _postinst(tmp_path, common_rc=0)
    assert proc.returncode == 0
    assert "ERROR" not in proc.stderr


def test_postinst_syntax() -> None:
    text = (PKG / "debian/vpsnet-dkms.postinst.in").read_text()
    assert text.startswith("#!/bin/sh\n") and "\nset -e\n" in text and "#DEBHELPER#" in text
    subprocess.run(["sh", "-n", "-c", text], check=True)


def test_lint_overrides_have_reasons() -> None:
    files = [*(PKG / "debian").glob("*.lintian-overrides"), PKG / "rpm/vpsnet.rpmlintrc"]
    for path in files:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() and not line.startswith("#"):
                assert i > 0 and lines[i - 1].startswith("# "), f"{path}:{i + 1} has no reason"


def test_signing_material_is_ignored_by_git() -> None:
    for path in (".cache/signing-gnupg/private-keys-v1.d/x.key", "dist/repo/InRelease"):
        proc = subprocess.run(["git", "-C", str(TOP), "check-ignore", "-q", path])
        assert proc.returncode == 0, f"{path} is not ignored by git"


def test_no_private_key_material_committed() -> None:
    tracked = subprocess.run(
        ["git", "-C", str(TOP), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in tracked:
        path = TOP / name.decode()
        if name and path.is_file() and path.stat().st_size < 5_000_000:
            data = path.read_bytes()
            # spelled in parts: this file itself holds no armoured key either
            assert b"PRIVATE " + b"KEY BLOCK" not in data, path  # OpenPGP
            assert not re.search(rb"-----(BEGIN|END) [A-Z0-9 ]*PRIVATE " + rb"KEY-----", data), path


# ---------------------------------------- kernel hooks (before dkms's) ---

HOOKS = PKG / "kernel-hooks"
HOOK_FILES = ("kernel-hook.in", "05vpsnet-dkms", "39-vpsnet-dkms.install")


@pytest.mark.parametrize("name", HOOK_FILES)
def test_kernel_hook_syntax(name: str) -> None:
    path = HOOKS / name
    assert path.read_text().startswith("#!/bin/sh\n")
    assert path.stat().st_mode & 0o111, f"{name} is not executable"
    subprocess.run(["sh", "-n", str(path)], check=True)
    subprocess.run(["sh", "-n", str(PKG / "debian/vpsnet-dkms.postrm")], check=True)


def test_run_parts_hook_runs_before_dkms(tmp_path: Path) -> None:
    """run-parts runs only names of [A-Za-z0-9_-], in sorted order: ours
    before DKMS's "dkms" (and before initramfs-tools and zz-update-grub)."""
    name = "05vpsnet-dkms"
    assert re.fullmatch(r"[A-Za-z0-9_-]+", name)
    for other in ("dkms", "initramfs-tools", "zz-update-grub"):
        (tmp_path / other).write_text("#!/bin/sh\n")
        (tmp_path / other).chmod(0o755)
    (tmp_path / name).write_text((HOOKS / name).read_text())
    (tmp_path / name).chmod(0o755)
    for lang in ("C", "C.UTF-8"):
        listed = subprocess.run(
            ["run-parts", "--test", "--arg=6.1.0-57-cloud-amd64", str(tmp_path)],
            capture_output=True, text=True, check=True,
            env={"LC_ALL": lang, "PATH": "/usr/bin:/bin"},
        ).stdout.split()
        assert [Path(p).name for p in listed][:2] == [name, "dkms"], listed


def test_kernel_install_plugin_runs_before_dkms_plugin() -> None:
    name = "39-vpsnet-dkms.install"
    assert name.endswith(".install") and name < "40-dkms.install" and name < "dkms"
    text = (HOOKS / name).read_text()
    assert '[ "${1:-}" = add ] || exit 0' in text
    assert "/usr/lib/vpsnet-dkms/kernel-hook" in text


def test_kernel_hooks_installed_by_deb_and_rpm() -> None:
    rules = (PKG / "debian/rules").read_text()
    for dest in ("usr/lib/vpsnet-dkms/kernel-hook", "etc/kernel/postinst.d/05vpsnet-dkms",
                 "etc/kernel/header_postinst.d/05vpsnet-dkms",
                 "usr/lib/kernel/install.d/39-vpsnet-dkms.install"):
        assert f"debian/vpsnet-dkms/{dest}" in rules, dest
    spec = (PKG / "rpm/vpsnet.spec.in").read_text()
    assert "%{_kernel_install_dir}/39-vpsnet-dkms.install" in spec
    assert "%{hookdir}/kernel-hook" in spec and "%global hookdir /usr/lib/vpsnet-dkms" in spec
    stage = (PKG / "scripts/stage.sh").read_text()
    assert "kernel-hooks/kernel-hook.in" in stage


def test_kernel_hook_never_fails_its_caller() -> None:
    text = (HOOKS / "kernel-hook.in").read_text()
    active = active_lines(text)
    assert "set -e" not in active  # every path ends in "exit 0"
    assert re.findall(r"^\s*exit (\d+)", active, re.M) and set(
        re.findall(r"^\s*exit (\d+)", active, re.M)) == {"0"}
    assert 'dkms install -m "$NAME" -v "$VERSION" -k "$kernel"' in active
    assert "/var/lib/vpsnet/dkms-failed" in active and "uname" not in active
    for wrapper in ("05vpsnet-dkms", "39-vpsnet-dkms.install"):
        w = active_lines((HOOKS / wrapper).read_text())
        assert "[ -x /usr/lib/vpsnet-dkms/kernel-hook ] || exit 0" in w  # removed, not purged


def _autoinstall_decision(tmp_path: Path, status_kernel: str, target: str) -> str:
    """AUTOINSTALL as dkms 3.0.10's autoinstall() sees it: read_conf() has a
    local kernelver (the kernel of a `dkms status` line) that shadows the
    global one (the --kernelver target), and sources dkms.conf in a subshell."""
    conf = tmp_path / "dkms.conf"
    conf.write_text((PKG / "dkms.conf.in").read_text().replace("@VERSION@", "9.8.7"))
    script = f"""
kernelver=("{target}")
read_conf() {{ local kernelver="$1"; safe_source "$2"; }}
safe_source() {{ ( . "$1" >/dev/null; echo "AUTOINSTALL=[$AUTOINSTALL]" ); }}
read_conf "{status_kernel}" "{conf}"
"""
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_dkms_conf_no_autoinstall_outside_build_exclusive(tmp_path: Path) -> None:
    built = "6.12.117+deb12-cloud-amd64"
    assert _autoinstall_decision(tmp_path, built, "6.1.0-57-cloud-amd64") == "AUTOINSTALL=[yes]"
    # the target is only in the shadowed global: still seen
    assert _autoinstall_decision(tmp_path, built, "4.19.0-old-amd64") == "AUTOINSTALL=[]"
    # an "added" module has no status kernel
    assert _autoinstall_decision(tmp_path, "", "4.19.0-old-amd64") == "AUTOINSTALL=[]"
    assert _autoinstall_decision(tmp_path, "", "6.1.0-57-cloud-amd64") == "AUTOINSTALL=[yes]"


def test_dkms_conf_checks_the_failure_record() -> None:
    active = active_lines((PKG / "dkms.conf.in").read_text())
    assert '"/var/lib/vpsnet/dkms-failed/$PACKAGE_VERSION/$_vpsnet_k"' in active
    assert '"$(unset kernelver; printf' in active
