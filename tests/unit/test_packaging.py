"""Fast checks of packaging/ sources (no package build; see
tests/packaging/test_host_packaging.py for the real builds)."""

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
            # spelled in two parts: this file itself holds no armoured key either
            assert b"PRIVATE " + b"KEY BLOCK" not in data, path
