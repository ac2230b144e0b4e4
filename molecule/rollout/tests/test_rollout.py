"""molecule/rollout verify: every host runs the version the last rollout
rolled out (VPSNET_ROLLOUT_EXPECT), prebuilt for its kernel (or built by DKMS
where the repository has no prebuilt module for it), loaded, healthy, its
metrics served by vpsnet-exporter."""

from __future__ import annotations

import os
import re
from typing import Any

EXPECT = os.environ.get("VPSNET_ROLLOUT_EXPECT", "1.1.0")


def _module_package(host: Any) -> Any:
    kmod = host.package(f"vpsnet-kmod-{host.check_output('uname -r')}")
    return kmod if kmod.is_installed else host.package("vpsnet-dkms")


def test_packages_at_the_rolled_out_version(host: Any) -> None:
    for p in (_module_package(host), host.package("vpsnet-tools")):
        assert p.is_installed and p.version == EXPECT, (p.name, p.version)
    assert host.run("dpkg --audit").stdout == ""


def test_the_module_modprobe_finds_is_the_installed_one(host: Any) -> None:
    kernel = host.check_output("uname -r")
    if _module_package(host).name.startswith("vpsnet-kmod-"):
        assert host.check_output("modinfo -n vpsnet") == f"/lib/modules/{kernel}/updates/vpsnet.ko"
        assert not host.package("vpsnet-dkms").is_installed
    else:
        out = host.check_output(f"dkms status vpsnet/{EXPECT} -k {kernel}")
        assert f"vpsnet/{EXPECT}, {kernel}, x86_64: installed" in out, out
    assert host.check_output("modinfo -F version vpsnet") == EXPECT


def test_loaded_and_healthy(host: Any) -> None:
    assert host.file("/sys/module/vpsnet/version").content_string.strip() == EXPECT
    r = host.run(f"vpsnet-status --samples 2 --interval 0.5 --timeout 20 --expect-version {EXPECT}"
                 " --min-devices 2")
    assert r.rc == 0, r.stdout + r.stderr


def test_exporter_serves_the_new_metric_family(host: Any) -> None:
    body = host.check_output("python3 -c \"import urllib.request; print(urllib.request.urlopen("
                             "'http://127.0.0.1:19462/metrics', timeout=10).read().decode())\"")
    assert re.search(r"^vpsnet_up 1(\.0)?$", body, re.M), body[:2000]
    assert f'version="{EXPECT}"' in body
    # 1.1.0 added vpsnet_device_queues (molecule/rollout/patches/1.1.0-add-metric.patch)
    assert ("# TYPE vpsnet_device_queues gauge" in body) == (EXPECT != "1.0.0")
