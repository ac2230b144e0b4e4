"""The vpsnet_driver role's input checks, as its tasks/validate.yml runs them."""

from __future__ import annotations

import pytest
from testlib.vpsnet_inputs_helpers import errors

GOOD = {
    "vpsnet_driver_version": "1.0.0",
    "vpsnet_driver_interval_ms": 1000,
    "vpsnet_driver_stall_intervals": 3,
    "vpsnet_driver_drivers": ["ena", "virtio_net", "gve"],
}


def driver_errors(**kw: object) -> list[str]:
    return errors("vpsnet_driver", {**GOOD, **{f"vpsnet_driver_{k}": v for k, v in kw.items()}})


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0~rc1", "2.0.0+git3", "10.2"])
def test_good_versions(version: str) -> None:
    assert driver_errors(version=version) == []


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"version": "latest"}, "vpsnet_driver_version='latest' is not a version string"),
        ({"version": "1.0.0; rm -rf /"}, "is not a version string"),
        ({"version": "1"}, "vpsnet_driver_version='1'"),
        ({"interval_ms": 50}, "vpsnet_driver_interval_ms=50 is outside 100..60000"),
        ({"interval_ms": 60001}, "outside 100..60000"),
        ({"stall_intervals": 1}, "vpsnet_driver_stall_intervals=1 is outside 2..100"),
        ({"stall_intervals": "x"}, "vpsnet_driver_stall_intervals='x' is not an integer"),
        ({"drivers": []}, "vpsnet_driver_drivers=[] must be a non-empty list"),
        ({"drivers": ["ena", "bad name"]}, "'bad name' is not a kernel driver name"),
    ],
)
def test_bad_input_named(kw: dict[str, object], needle: str) -> None:
    found = driver_errors(**kw)
    assert any(needle in e for e in found), found


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"method": "kmod"}, "vpsnet_driver_method='kmod' is not one of auto, prebuilt, dkms"),
        ({"dkms_signing_key": "/etc/vpsnet/fleet.key"}, "set both"),
        ({"dkms_signing_cert": "/etc/vpsnet/fleet.crt"}, "set both"),
        ({"dkms_signing_key": "fleet.key", "dkms_signing_cert": "/etc/vpsnet/fleet.crt"},
         "vpsnet_driver_dkms_signing_key='fleet.key' is not an absolute path"),
        ({"dkms_signing_key": "/k", "dkms_signing_cert": "fleet.crt"},
         "vpsnet_driver_dkms_signing_cert='fleet.crt' is not an absolute path"),
    ],
)
def test_method_and_signing(kw: dict[str, str], needle: str) -> None:
    found = driver_errors(**kw)
    assert any(needle in e for e in found), found


def test_a_pkcs11_signing_key_is_accepted() -> None:
    assert driver_errors(method="dkms", dkms_signing_key="pkcs11:token=fleet;object=vpsnet",
                         dkms_signing_cert="/etc/vpsnet/fleet.crt") == []
