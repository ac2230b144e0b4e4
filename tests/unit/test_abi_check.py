"""vpsnet-abi check's logic on synthetic modules and kernels (abi_check.check_module),
and the kernel-side parsers (Module.symvers, config)."""

from __future__ import annotations

from typing import Any

from vpsnet_tools.abi_check import CheckFinding, check_module, expected_vermagic_flags
from vpsnet_tools.abi_kernel import Export, KernelInfo, parse_config, parse_symvers
from vpsnet_tools.abi_module import KoInfo

CFG = {"CONFIG_X86_64": "y", "CONFIG_SMP": "y", "CONFIG_PREEMPT_BUILD": "y",
       "CONFIG_MODULE_UNLOAD": "y", "CONFIG_MODVERSIONS": "y", "CONFIG_MODULE_SIG": "y"}
REL = "6.1.0-56-cloud-amd64"


def _kernel(**kw: Any) -> KernelInfo:
    base: dict[str, Any] = {
        "release": REL, "config": dict(CFG),
        "symvers": {"printk": Export(0x11, "vmlinux", "EXPORT_SYMBOL", ""),
                    "dev_get_stats": Export(0x22, "vmlinux", "EXPORT_SYMBOL_GPL", ""),
                    "cxl_thing": Export(0x33, "cxl_core", "EXPORT_SYMBOL_GPL", "CXL")},
        "modules": {"cxl_core", "virtio_net"}, "running": False,
        "sources": {"symvers": "Module.symvers", "modules": "modules.dep"},
    }
    base.update(kw)
    return KernelInfo(**base)


def _ko(**kw: Any) -> KoInfo:
    base: dict[str, Any] = {
        "path": "vpsnet.ko", "machine": "EM_X86_64",
        "modinfo": {"vermagic": [f"{REL} SMP preempt mod_unload modversions "],
                    "license": ["GPL"], "depends": [""]},
        "versions": {"printk": 0x11, "dev_get_stats": 0x22},
        "undefined": {"printk", "dev_get_stats"}, "signed": False,
    }
    base.update(kw)
    return KoInfo(**base)


def _fails(findings: list[CheckFinding]) -> list[tuple[str, str]]:
    return [(f.check, f.message) for f in findings if f.status == "fail"]


def test_check_clean_module_loads() -> None:
    f = check_module(_ko(), _kernel())
    assert _fails(f) == []
    assert {x.check for x in f if x.status == "ok"} >= {"vermagic", "symbol", "namespace",
                                                         "depends", "signature"}


def test_check_vermagic_release_and_flags() -> None:
    f = _fails(check_module(_ko(), _kernel(release="6.12.117+deb12-cloud-amd64")))
    assert f[0][0] == "vermagic" and "built for 6.1.0-56-cloud-amd64" in f[0][1]
    cfg = dict(CFG)
    del cfg["CONFIG_PREEMPT_BUILD"]
    f = _fails(check_module(_ko(), _kernel(config=cfg)))
    assert f == [("vermagic", "flags SMP preempt mod_unload modversions != kernel's "
                              "SMP mod_unload modversions")]


def test_check_crc_missing_symbol_and_no_versions() -> None:
    k = _kernel()
    k.symvers["printk"] = Export(0x99, "vmlinux", "EXPORT_SYMBOL", "")
    f = _fails(check_module(_ko(undefined={"printk", "dev_get_stats", "gone"}), k))
    assert ("symbol", "printk: CRC 0x00000011 in module, 0x00000099 in 6.1.0-56-cloud-amd64 "
                      "(vmlinux) (disagrees about version)") in f
    assert any(m.startswith("gone: not exported") for _, m in f)
    f = _fails(check_module(_ko(versions={}), _kernel()))
    assert f and "no symbol versions" in f[0][1]


def test_check_namespace_license_depends() -> None:
    ko = _ko(undefined={"printk", "cxl_thing"}, versions={"printk": 0x11, "cxl_thing": 0x33})
    assert _fails(check_module(ko, _kernel())) == [
        ("namespace", "cxl_thing in namespace CXL, module lacks MODULE_IMPORT_NS(CXL)")]
    ko.modinfo["import_ns"] = ["CXL"]
    assert _fails(check_module(ko, _kernel())) == []

    prop = _ko()
    prop.modinfo["license"] = ["Proprietary"]
    assert [c for c, _ in _fails(check_module(prop, _kernel()))] == ["license"]

    dep = _ko()
    dep.modinfo["depends"] = ["virtio_net,ena"]
    assert _fails(check_module(dep, _kernel())) == [("depends", "ena not in modules.dep")]
    unknown = [f for f in check_module(dep, _kernel(modules=None)) if f.check == "depends"]
    assert unknown[0].status == "unknown" and "unknown" in unknown[0].message


def test_check_signature_enforcement() -> None:
    cfg = {**CFG, "CONFIG_MODULE_SIG_FORCE": "y"}
    assert _fails(check_module(_ko(), _kernel(config=cfg))) == [
        ("signature", "kernel requires signed modules (CONFIG_MODULE_SIG_FORCE=y); "
                      "module is unsigned")]
    assert _fails(check_module(_ko(signed=True), _kernel(config=cfg))) == []
    sig = next(f for f in check_module(_ko(), _kernel()) if f.check == "signature")
    assert sig.status == "ok" and sig.message.startswith("unsigned (loads, taints")


def test_check_arch() -> None:
    f = _fails(check_module(_ko(machine="EM_AARCH64"), _kernel()))
    assert f == [("arch", "module is EM_AARCH64, kernel is EM_X86_64")]


def test_parse_symvers_and_config() -> None:
    syms = parse_symvers("0x0000abcd\tfoo\tvmlinux\tEXPORT_SYMBOL\t\n"
                             "0x12\tbar\tdrivers/cxl/core/cxl_core\tEXPORT_SYMBOL_GPL\tCXL\n"
                             "garbage line\n")
    assert syms["foo"] == Export(0xABCD, "vmlinux", "EXPORT_SYMBOL", "")
    assert syms["bar"].namespace == "CXL" and len(syms) == 2
    cfg = parse_config('# comment\nCONFIG_SMP=y\nCONFIG_X="a b"\n# CONFIG_Y is not set\n')
    assert cfg == {"CONFIG_SMP": "y", "CONFIG_X": "a b"}
    assert expected_vermagic_flags({"CONFIG_SMP": "y", "CONFIG_PREEMPT_RT": "y"}) == [
        "SMP", "preempt_rt"]
