# ruff: noqa: E501, E101  (GRUB_CFG reproduces a generated grub.cfg, tabs and long lines)
"""vpsnet-status --next-boot: which kernel boots next (GRUB default, one-time
entry, saved entry, newest /boot/vmlinuz-*), which vpsnet.ko modprobe finds for
it, and vpsnet-abi's load check against it, on fake /boot and /lib/modules trees."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import pytest

from vpsnet_tools import status, status_next_boot

OLD = "6.1.0-56-cloud-amd64"
NEW = "6.1.0-57-cloud-amd64"
K612 = "6.12.117+deb12-cloud-amd64"
UUID = "0b2c6a1e-1111-2222-3333-444455556666"

# Debian 12's generated grub.cfg, cut to what matters: the next_entry / default
# logic of 00_header and 10_linux's entries (newest kernel first).
GRUB_CFG = f"""\
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "${{next_entry}}" ] ; then
   set default="${{next_entry}}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="{{default}}"
fi
function load_video {{
  insmod all_video
}}
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux $menuentry_id_option 'gnulinux-simple-{UUID}' {{
	load_video
	insmod ext2
	if [ x$feature_platform_search_hint = xy ]; then
	  search --no-floppy --fs-uuid --set=root {UUID}
	fi
	echo	'Loading Linux {K612} ...'
	linux	/boot/vmlinuz-{K612} root=UUID={UUID} ro console=ttyS0
	initrd	/boot/initrd.img-{K612}
}}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-{UUID}' {{
	menuentry 'Debian GNU/Linux, with Linux {K612}' --class debian $menuentry_id_option 'gnulinux-{K612}-advanced-{UUID}' {{
		linux	/boot/vmlinuz-{K612} root=UUID={UUID} ro console=ttyS0
	}}
	menuentry 'Debian GNU/Linux, with Linux {NEW}' --class debian $menuentry_id_option 'gnulinux-{NEW}-advanced-{UUID}' {{
		linux	/boot/vmlinuz-{NEW} root=UUID={UUID} ro console=ttyS0
	}}
	menuentry 'Debian GNU/Linux, with Linux {NEW} (recovery mode)' $menuentry_id_option 'gnulinux-{NEW}-recovery-{UUID}' {{
		linux	/vmlinuz-{NEW} root=UUID={UUID} ro single
	}}
	menuentry 'Debian GNU/Linux, with Linux {OLD}' --class debian $menuentry_id_option 'gnulinux-{OLD}-advanced-{UUID}' {{
		linux	/boot/vmlinuz-{OLD} root=UUID={UUID} ro console=ttyS0
	}}
}}
"""


def grubenv(**kw: str) -> str:
    body = "# GRUB Environment Block\n" + "".join(f"{k}={v}\n" for k, v in kw.items())
    return body + "#" * (1024 - len(body))


def boot_tree(root: Path, kernels: list[str], default: str | None = "0",
              env: dict[str, str] | None = None) -> Path:
    """/boot with vmlinuz-K for each kernel; grub.cfg only when default is not None."""
    boot = root / "boot"
    boot.mkdir(parents=True, exist_ok=True)
    for k in kernels:
        (boot / f"vmlinuz-{k}").write_bytes(b"MZ")
    if default is not None:
        (boot / "grub").mkdir(exist_ok=True)
        (boot / "grub/grub.cfg").write_text(GRUB_CFG.replace("{default}", default))
        (boot / "grub/grubenv").write_text(grubenv(**(env or {})))
    return root


def test_version_order_is_grubs() -> None:
    releases = ["6.1.0-9-cloud-amd64", K612, NEW, "6.12.95+bpo-cloud-amd64", OLD]
    assert sorted(releases, key=status_next_boot.version_key) == [
        "6.1.0-9-cloud-amd64", OLD, NEW, "6.12.95+bpo-cloud-amd64", K612]


def test_newest_vmlinuz_without_grub(tmp_path: Path) -> None:
    boot_tree(tmp_path, [OLD, "6.1.0-9-cloud-amd64", NEW], default=None)
    (tmp_path / "boot" / "vmlinuz-6.1.0-99-cloud-amd64.dpkg-tmp").write_bytes(b"")
    kernel, how = status_next_boot.next_boot_kernel(tmp_path)
    assert kernel == NEW
    assert "newest of 3" in how


def test_no_kernel_at_all(tmp_path: Path) -> None:
    (tmp_path / "boot").mkdir()
    assert status_next_boot.next_boot_kernel(tmp_path)[0] is None
    nb = status_next_boot.check_next_boot(tmp_path, run=_no_modinfo)
    assert not nb.ok and nb.code == status_next_boot.EXIT_NEXT_BOOT_UNKNOWN


@pytest.mark.parametrize(
    ("default", "env", "want", "how"),
    [
        ("0", {}, K612, "default '0'"),
        ("1>1", {}, NEW, "'1>1'"),
        ("1>3", {}, OLD, "'1>3'"),
        (f"gnulinux-advanced-{UUID}>gnulinux-{OLD}-advanced-{UUID}", {}, OLD, "advanced"),
        ("Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux " + NEW, {}, NEW,
         "Advanced"),
        # GRUB_DEFAULT=saved: grub.cfg reads saved_entry (grub-set-default) from grubenv
        ("${saved_entry}", {"saved_entry": f"gnulinux-{OLD}-advanced-{UUID}"}, OLD, "saved_entry"),
        ("${saved_entry}", {}, K612, "saved_entry"),
        # a one-time grub-reboot entry wins over the default
        ("0", {"next_entry": "1>3"}, OLD, "next_entry"),
        # an id that names an entry inside the submenu without the submenu's part
        (f"gnulinux-{NEW}-recovery-{UUID}", {}, NEW, "recovery"),
        # a submenu alone boots its first entry
        ("1", {}, K612, "'1'"),
    ],
)
def test_grub_default(tmp_path: Path, default: str, env: dict[str, str], want: str,
                      how: str) -> None:
    boot_tree(tmp_path, [OLD, NEW, K612], default, env)
    kernel, found = status_next_boot.next_boot_kernel(tmp_path)
    assert kernel == want, found
    assert how in found and found.startswith("GRUB")


def test_unresolvable_grub_default_falls_back_to_newest(tmp_path: Path) -> None:
    boot_tree(tmp_path, [OLD, NEW], "7")
    kernel, how = status_next_boot.next_boot_kernel(tmp_path)
    assert (kernel, how.startswith("newest")) == (NEW, True)


def test_bls_saved_entry(tmp_path: Path) -> None:
    """EL 9: grub.cfg has no menuentry; saved_entry names a BootLoaderSpec file."""
    k = "5.14.0-427.el9.x86_64"
    boot = tmp_path / "boot"
    (boot / "grub2").mkdir(parents=True)
    (boot / f"vmlinuz-{k}").write_bytes(b"")
    (boot / "vmlinuz-5.14.0-500.el9.x86_64").write_bytes(b"")
    (boot / "grub2/grub.cfg").write_text('set default="${saved_entry}"\nblscfg\n')
    (boot / "grub2/grubenv").write_text(grubenv(saved_entry=f"abc-{k}"))
    (boot / "loader/entries").mkdir(parents=True)
    (boot / f"loader/entries/abc-{k}.conf").write_text(f"title EL\nlinux /vmlinuz-{k}\n")
    assert status_next_boot.next_boot_kernel(tmp_path)[0] == k


# --------------------------------------------------------------------------- a module to check

CFG = {"CONFIG_X86_64": "y", "CONFIG_SMP": "y", "CONFIG_PREEMPT_BUILD": "y",
       "CONFIG_MODULE_UNLOAD": "y", "CONFIG_MODVERSIONS": "y", "CONFIG_MODULE_SIG": "y"}
SYMS = {"register_netdevice_notifier": 0x1234ABCD, "kfree": 0x0BADF00D}


def _section(name: int, typ: int, off: int, size: int, link: int = 0, info: int = 0,
             align: int = 1, entsize: int = 0) -> bytes:
    return struct.pack("<IIQQQQIIQQ", name, typ, 0, 0, off, size, link, info, align, entsize)


def fake_ko(release: str, crcs: dict[str, int] | None = None, signed: bool = False) -> bytes:
    """A minimal x86_64 ELF relocatable with what vpsnet-abi check reads: .modinfo,
    __versions, undefined symbols in .symtab, and optionally a signature trailer."""
    crcs = SYMS if crcs is None else crcs
    modinfo = (f"version=1.1.0\0license=GPL\0depends=\0name=vpsnet\0"
               f"vermagic={release} SMP preempt mod_unload modversions \0").encode()
    versions = b"".join(struct.pack("<Q", c) + n.encode().ljust(56, b"\0") for n, c in crcs.items())
    strtab = b"\0" + b"".join(n.encode() + b"\0" for n in crcs)
    syms, off = [b"\0" * 24], 1
    for n in crcs:
        syms.append(struct.pack("<IBBHQQ", off, 0x10, 0, 0, 0, 0))  # GLOBAL NOTYPE UNDEF
        off += len(n) + 1
    symtab = b"".join(syms)
    names = [b"", b".modinfo", b"__versions", b".symtab", b".strtab", b".shstrtab"]
    shstr = b"\0".join(names) + b"\0"
    name_off = [shstr.index(n + b"\0") if n else 0 for n in names]
    body, offs = b"", []
    for blob in (modinfo, versions, symtab, strtab, shstr):
        offs.append(64 + len(body))
        body += blob + b"\0" * (-len(blob) % 8)
    shoff = 64 + len(body)
    sh = _section(0, 0, 0, 0)
    sh += _section(name_off[1], 1, offs[0], len(modinfo))
    sh += _section(name_off[2], 1, offs[1], len(versions), align=8)
    sh += _section(name_off[3], 2, offs[2], len(symtab), link=4, info=1, align=8, entsize=24)
    sh += _section(name_off[4], 3, offs[3], len(strtab))
    sh += _section(name_off[5], 3, offs[4], len(shstr))
    ehdr = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack(
        "<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 6, 5)
    data = ehdr + body + sh
    if not signed:
        return data
    # PKCS#7 signature bytes, struct module_signature (id_type 2 = PKCS#7, sig_len), magic
    sig = b"sig"
    return data + sig + struct.pack(">BBBBB3xI", 0, 0, 2, 0, 0, len(sig)) + \
        b"~Module signature appended~\n"


def kernel_tree(root: Path, release: str, ko: bytes | None, where: str = "updates",
                headers: bool = True, enforce: bool = False) -> None:
    """/lib/modules/K with modules.dep naming the module, and K's config and
    Module.symvers (in the build tree, or only the vpsnet-kmod package's copy)."""
    mdir = root / "lib/modules" / release
    mdir.mkdir(parents=True, exist_ok=True)
    cfg = dict(CFG, CONFIG_MODULE_SIG_FORCE="y") if enforce else CFG
    config = "".join(f"{k}={v}\n" for k, v in cfg.items())
    symvers = "".join(f"0x{c:08x}\t{n}\tvmlinux\tEXPORT_SYMBOL\t\n" for n, c in SYMS.items())
    if headers:
        (mdir / "build").mkdir(exist_ok=True)
        (mdir / "build/.config").write_text(config)
        (mdir / "build/Module.symvers").write_text(symvers)
    else:
        (root / "boot").mkdir(exist_ok=True)
        (root / "boot" / f"config-{release}").write_text(config)
        share = root / "usr/share/vpsnet/kmod" / release
        share.mkdir(parents=True, exist_ok=True)
        (share / "Module.symvers").write_text(symvers)
    dep = ""
    if ko is not None:
        (mdir / where).mkdir(parents=True, exist_ok=True)
        (mdir / where / "vpsnet.ko").write_bytes(ko)
        dep = f"{where}/vpsnet.ko:\n"
    (mdir / "modules.dep").write_text("kernel/drivers/net/virtio_net.ko:\n" + dep)


def _no_modinfo(argv: list[str]) -> subprocess.CompletedProcess[str]:
    raise FileNotFoundError("modinfo")


def test_find_module_asks_modinfo_under_root(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def modinfo(argv: list[str]) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        out = f"{tmp_path}/lib/modules/{NEW}/updates/vpsnet.ko\n"
        return subprocess.CompletedProcess(argv, 0, out, "")

    assert status_next_boot.find_module(NEW, tmp_path, modinfo) == f"/lib/modules/{NEW}/updates/vpsnet.ko"
    assert seen == [["modinfo", "-b", str(tmp_path), "-k", NEW, "-n", "vpsnet"]]

    def not_found(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 1, "", "modinfo: ERROR: Module vpsnet not found.")

    assert status_next_boot.find_module(NEW, Path("/"), not_found) is None


def test_find_module_reads_modules_dep_without_modinfo(tmp_path: Path) -> None:
    kernel_tree(tmp_path, NEW, fake_ko(NEW), where="updates/dkms")
    assert status_next_boot.find_module(NEW, tmp_path, _no_modinfo) == (
        f"/lib/modules/{NEW}/updates/dkms/vpsnet.ko")
    kernel_tree(tmp_path, OLD, None)
    assert status_next_boot.find_module(OLD, tmp_path, _no_modinfo) is None


@pytest.mark.parametrize("headers", [True, False])
def test_next_kernel_with_a_loadable_module(tmp_path: Path, headers: bool) -> None:
    """Prebuilt host: no headers, the kmod package's Module.symvers is enough."""
    boot_tree(tmp_path, [OLD, NEW], default=None)
    kernel_tree(tmp_path, NEW, fake_ko(NEW), headers=headers)
    nb = status_next_boot.check_next_boot(tmp_path, run=_no_modinfo)
    assert nb.ok, nb.reason
    assert (nb.kernel, nb.module, nb.code) == (NEW, f"/lib/modules/{NEW}/updates/vpsnet.ko", 0)
    assert NEW in nb.reason and "1.1.0" in nb.reason
    assert {f["check"] for f in nb.findings} >= {"vermagic", "symbol", "signature"}


def test_next_kernel_without_vpsnet_is_refused_naming_it(tmp_path: Path) -> None:
    """The running kernel has vpsnet; the kernel GRUB boots next has none."""
    boot_tree(tmp_path, [OLD, NEW], default="0", env={"next_entry": "1>1"})
    (tmp_path / "boot/grub/grub.cfg").write_text(
        GRUB_CFG.replace("{default}", "0").replace(K612, OLD))
    kernel_tree(tmp_path, OLD, fake_ko(OLD))
    kernel_tree(tmp_path, NEW, None)
    nb = status_next_boot.check_next_boot(tmp_path, run=_no_modinfo)
    assert not nb.ok and nb.code == status.EXIT_UNHEALTHY
    assert nb.kernel == NEW
    assert f"next boot kernel {NEW}" in nb.reason and f"vpsnet-kmod-{NEW}" in nb.reason


@pytest.mark.parametrize(
    ("ko", "enforce", "needle"),
    [
        (fake_ko(OLD), False, f"built for {OLD}"),  # the old kernel's module copied over
        (fake_ko(NEW, {"register_netdevice_notifier": 0x1, "kfree": 0x0BADF00D}), False, "CRC"),
        (fake_ko(NEW), True, "unsigned"),
    ],
)
def test_next_kernel_module_that_will_not_load(tmp_path: Path, ko: bytes, enforce: bool,
                                              needle: str) -> None:
    boot_tree(tmp_path, [NEW], default=None)
    kernel_tree(tmp_path, NEW, ko, enforce=enforce)
    nb = status_next_boot.check_next_boot(tmp_path, run=_no_modinfo)
    assert not nb.ok and nb.code == status.EXIT_UNHEALTHY
    assert f"will not load on the next boot kernel {NEW}" in nb.reason
    assert needle in nb.reason


def test_signed_module_loads_where_signatures_are_enforced(tmp_path: Path) -> None:
    boot_tree(tmp_path, [NEW], default=None)
    kernel_tree(tmp_path, NEW, fake_ko(NEW, signed=True), enforce=True)
    assert status_next_boot.check_next_boot(tmp_path, run=_no_modinfo).ok


def test_next_kernel_without_config_cannot_be_checked(tmp_path: Path) -> None:
    boot_tree(tmp_path, [NEW], default=None)
    kernel_tree(tmp_path, NEW, fake_ko(NEW))
    for f in (tmp_path / "lib/modules" / NEW / "build").iterdir():
        f.unlink()
    nb = status_next_boot.check_next_boot(tmp_path, run=_no_modinfo)
    assert not nb.ok and nb.code == status_next_boot.EXIT_NEXT_BOOT_UNKNOWN
    assert NEW in nb.reason and "no kernel config" in nb.reason


def test_cli_next_boot(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_next_boot, "_run", _no_modinfo)
    boot_tree(tmp_path, [OLD, NEW], default=None)
    kernel_tree(tmp_path, OLD, fake_ko(OLD))
    kernel_tree(tmp_path, NEW, None)
    assert status.main(["--next-boot", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"next boot kernel {NEW}" in err
    assert status.main(["--next-boot", "--root", str(tmp_path), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert (doc["ok"], doc["kernel"], doc["module"]) == (False, NEW, None)
    kernel_tree(tmp_path, NEW, fake_ko(NEW))
    assert status.main(["--next-boot", "--root", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
