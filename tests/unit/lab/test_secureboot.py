"""uefi-secureboot guests: spec, QEMU command line, vars store and image cache."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from vpsnet_lab import image, secureboot
from vpsnet_lab.hostcheck import check_host
from vpsnet_lab.image import Image
from vpsnet_lab.qemu import qemu_command
from vpsnet_lab.spec import SpecError
from vpsnet_lab.specparse import parse

from .test_spec import mutate


def _sb_spec() -> dict[str, object]:
    return mutate(("guests", 1, "firmware"), "uefi-secureboot")


def test_firmware_defaults_to_bios_and_is_validated() -> None:
    spec = parse(_sb_spec(), "t.yml")
    assert [g.firmware for g in spec.guests] == ["bios", "uefi-secureboot"]
    assert spec.guests[1].uefi and not spec.guests[0].uefi
    with pytest.raises(SpecError) as exc:
        parse(mutate(("guests", 0, "firmware"), "coreboot"), "t.yml")
    assert any("guests[0] (a1).firmware: unknown firmware 'coreboot'" in p
               for p in exc.value.problems), exc.value.problems


def test_mok_certs_only_on_uefi_guests_and_must_be_readable(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        parse(mutate(("guests", 0, "mok_certs"), ["/x.der"]), "t.yml")
    assert any("only a uefi-secureboot guest has a MokList" in p for p in exc.value.problems)
    data = _sb_spec()
    data["guests"][1]["mok_certs"] = [str(tmp_path / "missing.der")]  # type: ignore[index]
    with pytest.raises(SpecError) as exc:
        check_host(parse(data, "t.yml"))
    assert any(f"mok_certs: cannot read {tmp_path / 'missing.der'}" in p
               for p in exc.value.problems), exc.value.problems


def test_uefi_guest_boots_from_pflash_with_its_config_in_smbios() -> None:
    spec = parse(_sb_spec(), "t.yml")
    g1 = spec.guests[1]
    img = Image("6.12", "6.12.0-0-cloud-amd64", Path("/img"), "uefi-secureboot")
    cmd = qemu_command(spec, g1, img, Path("/state/g1"), 50001, "ssh-ed25519 AAAA k", {})
    assert cmd[cmd.index("-machine") + 1] == "q35,smm=on"
    assert "driver=cfi.pflash01,property=secure,value=on" in cmd
    drives = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-drive"]
    assert drives[:2] == [
        f"if=pflash,format=raw,unit=0,readonly=on,file={secureboot.OVMF_CODE}",
        "if=pflash,format=raw,unit=1,file=/state/g1/OVMF_VARS.fd"]
    assert "/img/disk.raw" in drives[2] and "snapshot=on" in drives[2]
    assert "-kernel" not in cmd and "-append" not in cmd  # the ESP's grub boots the kernel
    oem = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-smbios" and "type=11" in cmd[i + 1]]
    assert len(oem) == 1 and "," not in oem[0].removeprefix("type=11,")
    cfg = json.loads(base64.urlsafe_b64decode(oem[0].split("vpsnet_lab=", 1)[1]))
    assert cfg["hostname"] == "g1" and cfg["authorized_key"] == "ssh-ed25519 AAAA k"
    bios = qemu_command(spec, spec.guests[0], img, Path("/state/a1"), 50000, "k", {1: [7]})
    assert bios[bios.index("-machine") + 1] == "pc" and "-kernel" in bios


def test_vars_store_gets_the_certificate_in_moklist(tmp_path: Path) -> None:
    if not secureboot.OVMF_VARS.exists():
        pytest.skip("ovmf is not installed")
    cert = tmp_path / "c.pem"
    import subprocess
    subprocess.run(["openssl", "req", "-new", "-nodes", "-x509", "-batch", "-subj",
                    "/CN=unit test mok/", "-newkey", "rsa:2048", "-keyout",
                    str(tmp_path / "c.key"), "-out", str(cert)], check=True, capture_output=True)
    out = secureboot.make_vars(tmp_path / "vars.fd", [cert])
    from virt.firmware.varstore.edk2 import Edk2VarStore
    varlist = Edk2VarStore(str(out)).get_varlist()
    mok = varlist["MokList"]
    # NV + BS, no runtime access: shim ignores a MokList the OS could have written.
    assert mok.attr == 0x3, hex(mok.attr)
    assert "unit test mok" in str(mok.sigdb)
    assert bool(varlist["SecureBootEnable"].data[0])


def test_secure_boot_and_bios_images_keep_separate_caches(tmp_path: Path) -> None:
    release, key = "6.1.0-57-cloud-amd64", "0123456789abcdef"
    names = [f"{release}-{key}", f"{release}-sb-{key}", f"{release}-sb-{'e' * 16}"]
    for n in names:
        (tmp_path / n).mkdir()
    assert image.stale_dirs(tmp_path, tmp_path / names[0], release, "6.1") == []
    assert image.stale_dirs(tmp_path, tmp_path / names[1], release, "6.1",
                            "uefi-secureboot") == [tmp_path / names[2]]
    assert image.image_dir(release, tmp_path, "uefi-secureboot").name.startswith(
        f"{release}-sb-")
    assert image.image_key(release) != image.image_key(release, "uefi-secureboot")
