"""Fuzzing (hypothesis) of everything vpsnet_facts reads from the host or the network,
and of the ethtool and /proc/interrupts parsers in vpsnet_tune (issue 21).

Classes: metadata JSON text, whole metadata answers (status, headers, body) for
both clouds, DMI/PCI/sysfs file contents (non-UTF-8 included), `ethtool -l/-g/-c`
text, /proc/interrupts text. The property is the same everywhere: no exception
escapes, and what comes back is well-typed (and, where it names a region, a
type or an id, in the cloud's own format). The counts of generated inputs per
class, and how many were refused (no value taken from them), are printed at
the end of the module (run with -s).
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ansible_collections.vpsnet.fleet.plugins.filter import vpsnet_tune
from ansible_collections.vpsnet.fleet.plugins.module_utils import vpsnet_bounds as bounds
from ansible_collections.vpsnet.fleet.plugins.module_utils import vpsnet_identity as identity
from ansible_collections.vpsnet.fleet.plugins.module_utils import vpsnet_inventory as inventory
from ansible_collections.vpsnet.fleet.plugins.module_utils import vpsnet_metadata as metadata
from ansible_collections.vpsnet.fleet.plugins.module_utils import vpsnet_nic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict
from testlib.input_counts import InputCounts
from testlib.vpsnet_facts_helpers import FIXTURES, REPO

FUZZ = settings(max_examples=400, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])
COUNTS = InputCounts("vpsnet_facts fuzz (rejected: refused, nothing taken from them)")
_print_counts = COUNTS.report_fixture()
MAX_INT = 2**31 - 1


@functools.cache
def irq_affinity() -> ModuleType:
    path = REPO / "roles/vpsnet_tune/files/vpsnet-irq-affinity"
    loader = importlib.machinery.SourceFileLoader("vpsnet_irq_affinity_fz", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- shared strategies

# digits that str.isdigit() or \d accept but int() may not, and numbers past int()'s limit
ODD_DIGITS = st.sampled_from(["\u00b2", "\u0663", "\uff10", "\u07c0", "1_0", "0x1f", "-1", "+5",
                              " 7 ", "1e3"])
HUGE = st.integers(min_value=11, max_value=6000).map(lambda n: "9" * n)
NUMBERISH = st.one_of(st.integers(0, 2**40).map(str), ODD_DIGITS, HUGE, st.just("n/a"),
                      st.text(max_size=12))
SPACE = st.sampled_from([" ", "\t", "  ", "\xa0", "\u2003", "", "\t\t"])
NEWLINE = st.sampled_from(["\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\u2028", "\x85"])


def join_lines(draw: st.DrawFn, lines: list[str]) -> str:
    out = ""
    for line in lines:
        out += line + draw(NEWLINE)
    if out and draw(st.booleans()):  # truncated anywhere
        out = out[: draw(st.integers(0, len(out)))]
    return out


# --------------------------------------------------------------------------- metadata JSON

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                               max_size=4),
    max_leaves=30,
)
FIELD_VALUES = st.one_of(
    JSON_VALUES,
    st.sampled_from(["us-east-1", "us-east-1a", "us-east-1\n", "m7i.metal-24xl", "m5.large\n",
                     "i-0abc", "i-0abc\n", "<b>Mars</b>", "us-gov-west-1", "eu-west-3c"]),
)
IDENTITY_DOCS = st.fixed_dictionaries(
    {},
    optional={"region": FIELD_VALUES, "availabilityZone": FIELD_VALUES,
              "instanceType": FIELD_VALUES, "instanceId": FIELD_VALUES},
)


@st.composite
def near_valid_identity(draw: st.DrawFn) -> dict[str, Any]:
    """Documents that are mostly right, so that accepted results get checked too."""
    region = draw(st.sampled_from(["us-east-1", "eu-west-3", "us-gov-west-1", "ap-south-2",
                                   "us-east-1\n", "US-EAST-1"]))
    suffix = draw(st.sampled_from(["a", "c", "-lax-1a", "aa", "\n", "", "-lax-1"]))
    doc: dict[str, Any] = {"region": region, "availabilityZone": region + suffix}
    doc["instanceType"] = draw(st.one_of(FIELD_VALUES, st.sampled_from(
        ["m7i.metal-24xl", "c7gn.metal", "u-6tb1.metal", "m5.large", "m5.metal-24", "x"])))
    doc["instanceId"] = draw(st.one_of(FIELD_VALUES, st.just("i-0123456789abcdef0")))
    return doc

JSON_SOUP = st.lists(
    st.sampled_from(["{", "}", "[", "]", '"', ":", ",", "\\", "1", "-", "e", ".", "true",
                     "null", "NaN", "Infinity", '"region"', '"us-east-1"', " ", "\n",
                     "9" * 50, '"\\u0000"', '"\\ud800"']),
    max_size=200,
).map("".join)


@st.composite
def deep_json(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 30000))
    opener = draw(st.sampled_from(["[", '{"a":', '[{"b":']))
    closer = {"[": "]", '{"a":': "}", '[{"b":': "}]"}[opener]
    body = opener * depth + draw(st.sampled_from(["1", '"x"', "", "null"]))
    return body + (closer * depth if draw(st.booleans()) else "")


JSON_TEXTS = st.one_of(
    st.tuples(st.just("random text"), st.text(max_size=500)),
    st.tuples(st.just("random bytes"),
              st.binary(max_size=500).map(lambda b: b.decode("utf-8", "replace"))),
    st.tuples(st.just("json-ish soup"), JSON_SOUP),
    st.tuples(st.just("deep nesting"), deep_json()),
    st.tuples(st.just("huge numbers"),
              HUGE.map(lambda digits: '{"region": ' + digits + "}")),
    st.tuples(st.just("valid JSON, wrong types"), JSON_VALUES.map(json.dumps)),
    st.tuples(st.just("identity-like documents"), IDENTITY_DOCS.map(json.dumps)),
    st.tuples(st.just("near-valid identity documents"), near_valid_identity().map(json.dumps)),
)


def check_identity(result: Any, problems: Any) -> None:
    assert isinstance(problems, list) and all(isinstance(p, str) and "\n" not in p
                                               for p in problems)
    if result is None:
        return
    assert identity.AWS_REGION_RE.fullmatch(result.region)
    assert result.zone.startswith(result.region)
    assert result.instance_type is None or identity.AWS_TYPE_RE.fullmatch(result.instance_type)
    assert result.instance_id is None or identity.AWS_INSTANCE_ID_RE.fullmatch(result.instance_id)


@FUZZ
@given(JSON_TEXTS)
def test_fuzz_metadata_json(vf, case):
    kind, text = case
    value, why = identity.load_json_bounded(text)
    assert why is None or (isinstance(why, str) and value is None and "\n" not in why)
    result, problems = identity.aws_identity(value) if why is None else (None, [why])
    check_identity(result, problems)
    COUNTS.add(f"metadata JSON: {kind}", rejected=result is None)  # accepted: checked above


# --------------------------------------------------------------------------- metadata answers

HEADER_VALUES = st.one_of(st.sampled_from(["Google", "google", "Google\n", "", "text/html",
                                           "application/json", "gzip", "identity", "99999999"]),
                          st.text(max_size=20))
ANSWERS = st.tuples(
    st.sampled_from([200, 200, 200, 204, 301, 401, 403, 404, 500, 999]),
    st.dictionaries(st.sampled_from(["Metadata-Flavor", "Content-Type", "Content-Encoding"]),
                    HEADER_VALUES, max_size=3),
    st.one_of(JSON_TEXTS.map(lambda case: case[1]), IDENTITY_DOCS.map(json.dumps),
              st.sampled_from(["tok-1", "projects/1/zones/us-central1-a", "e2-standard-2",
                               "projects/1/machineTypes/e2-standard-2", "4242", "4242\n",
                               "²", "<html>"]),
              st.text(max_size=100)),
)


PLAUSIBLE = st.one_of(
    st.tuples(st.just("aws"), st.tuples(
        st.tuples(st.just(200), st.just({}), st.sampled_from(["tok-1", "tok\n", "<b>", ""])),
        st.tuples(st.sampled_from([200, 200, 404]), st.just({}),
                  near_valid_identity().map(json.dumps)),
    ).map(list)),
    st.tuples(st.just("gcp"), st.lists(st.tuples(
        st.sampled_from([200, 200, 200, 404]),
        st.sampled_from([{"Metadata-Flavor": "Google"}, {"Metadata-Flavor": "Google",
                                                         "Content-Type": "text/html"}, {}]),
        st.sampled_from(["projects/1/zones/us-central1-a", "projects/1/zones/us-central1-a\n",
                         "zones/europe-west4-b", "projects/1/zones/the-moon", "e2-standard-2",
                         "projects/1/machineTypes/n2-highmem-8", "4242", "\u0663\u0663",
                         "9" * 30, "<html>"]),
    ), min_size=1, max_size=3)),
)


@FUZZ
@given(st.one_of(
    st.tuples(st.sampled_from(["aws", "gcp"]), st.lists(ANSWERS, min_size=1, max_size=4)),
    PLAUSIBLE,
))
def test_fuzz_metadata_answers(vf, case):
    cloud, answers = case
    """Whole answers (status, headers, body) fed to the AWS and GCP flows in place of
    the network: whatever they say, the probe returns a typed result or None."""
    probe = vf.MetadataProbe("http://127.0.0.1:9", 5.0)
    queue = list(answers)

    def fake_request(_cloud, _method, _path, _headers):
        if not queue:
            return None
        status, headers, text = queue.pop(0)
        return metadata.Answer(status, CaseInsensitiveDict(headers), text)

    probe._request = fake_request
    result = probe.aws() if cloud == "aws" else probe.gcp()
    assert all(isinstance(e, str) and "\n" not in e for e in probe.evidence), probe.evidence
    assert all(isinstance(w, str) and "\n" not in w for w in probe.warnings)
    COUNTS.add(f"metadata answers: {cloud}", rejected=result is None)
    if result is None:
        return
    assert isinstance(result, identity.MetadataResult) and result.provider == cloud
    if cloud == "aws":
        check_identity(result, [])
    else:
        assert identity.GCP_ZONE_RE.fullmatch(result.zone)
        assert result.region == identity.GCP_ZONE_RE.fullmatch(result.zone).group(1)
        assert result.instance_type is None or identity.GCP_TYPE_RE.fullmatch(result.instance_type)
        assert result.instance_id is None or identity.GCP_ID_RE.fullmatch(result.instance_id)


# --------------------------------------------------------------------------- DMI / PCI / sysfs

PCI = "sys/devices/pci0000:00/0000:00:05.0"
HOST_FILES = [f"sys/class/dmi/id/{n}" for n in (
    "sys_vendor", "product_name", "bios_vendor", "bios_version", "board_vendor",
    "chassis_asset_tag", "chassis_vendor", "product_uuid", "product_serial")] + [
    "sys/hypervisor/uuid", f"{PCI}/vendor", f"{PCI}/device", f"{PCI}/numa_node",
    "proc/interrupts"]
CONTENTS = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"Amazon EC2", b"Google", b"Google Compute Engine", b"m7i.metal-24xl",
                     b"ec2d6a3c-1f4b-2e9a-7c5d-8b0e4f6a9c12", b"0x1d0f", b"0xec20", b"-1",
                     b"\xff\xfe", b"\x00" * 50, b"GoogleCloud-1", b"4.11.amazon"]),
    NUMBERISH.map(lambda s: s.encode("utf-8", "surrogatepass")),
)
MSI_NAMES = st.lists(st.one_of(st.integers(0, 10**12).map(str), ODD_DIGITS.filter(
    lambda s: "/" not in s and s.strip() == s and s not in (".", "..")),
    st.text("0123456789abc\u00b2\u0663", min_size=1, max_size=30)), max_size=5)


@pytest.fixture(scope="module")
def host_tree() -> Iterator[Path]:
    """A private copy of the Nitro record that the fuzzer rewrites (reset every example)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "host"
        shutil.copytree(FIXTURES / "aws-nitro-ena", root, symlinks=True)
        yield root


def check_facts(facts: dict[str, Any]) -> None:
    assert facts["provider"] in ("aws", "gcp", "unknown")
    assert all(isinstance(e, str) and "\n" not in e for e in facts["evidence"])
    assert facts["instance_type"] is None or isinstance(facts["instance_type"], str)
    assert facts["instance_type_source"] in (None, "dmi", "metadata")
    for nic in facts["nics"]:
        assert isinstance(nic["name"], str)
        assert nic["numa_node"] is None or 0 <= nic["numa_node"] <= 4096
        assert nic["pci_id"] is None or len(nic["pci_id"]) == 9
        maximum = nic["queues"]["max"]
        assert maximum is None or all(v is None or 0 <= v <= MAX_INT for v in maximum.values())
        for irq in nic["irqs"]:
            assert isinstance(irq["irq"], int) and 0 <= irq["irq"] <= MAX_INT
            assert irq["queue"] is None or 0 <= irq["queue"] < 10**6
            assert irq["direction"] in ("rx", "tx", "rxtx", "shared", "block")
    json.dumps(facts)  # what Ansible will do with it


@FUZZ
@given(st.dictionaries(st.sampled_from(HOST_FILES), CONTENTS, min_size=1),
       MSI_NAMES, st.one_of(st.none(), st.text(max_size=300)))
def test_fuzz_dmi_pci_sysfs(vf, host_tree, contents, msi_names, ethtool_out):
    originals = {}
    added: list[Path] = []
    try:
        for rel, data in contents.items():
            path = host_tree / rel
            originals[path] = path.read_bytes() if path.exists() else None
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        for name in msi_names:
            path = host_tree / PCI / "msi_irqs" / name
            if not path.exists():
                path.write_text("msi\n")
                added.append(path)
        facts = vf.detect(str(host_tree), None, lambda _name: ethtool_out)
        check_facts(facts)
        for rel in contents:
            COUNTS.add(f"dmi/pci/sysfs file: {rel.rsplit('/', 1)[-1]}")
        COUNTS.add("dmi/pci/sysfs: trees")
    finally:
        for path, data in originals.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)
        for path in added:
            path.unlink()


def test_sysfs_reads_are_capped(tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"A" * (bounds.MAX_SYSFS * 4))
    assert len(bounds.read_attr(str(big))) == bounds.MAX_SYSFS
    assert bounds.read_attr(str(tmp_path)) is None  # a directory: unreadable, not an exception


# --------------------------------------------------------------------------- ethtool text

ETHTOOL_KEYS = st.sampled_from(["RX", "TX", "Other", "Combined", "RX Mini", "RX Jumbo", "rx",
                                "Adaptive RX", "Adaptive TX", "RX Buckets", "", "::"])


@st.composite
def ethtool_text(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 14))):
        kind = draw(st.integers(0, 3))
        if kind == 0:
            lines.append(draw(st.sampled_from(["Pre-set maximums:", "Current hardware settings:",
                                               "pre-set MAXIMUMS :", "Channel parameters for x:",
                                               "Ring parameters for eth0:"])))
        elif kind in (1, 2):
            value = draw(st.one_of(NUMBERISH, st.sampled_from(["on", "off", "n/a"])))
            lines.append(draw(SPACE) + draw(ETHTOOL_KEYS) + draw(SPACE) + ":" + draw(SPACE)
                         + value + draw(SPACE))
        else:
            lines.append(draw(st.text(max_size=40)))
    return join_lines(draw, lines)


@FUZZ
@given(ethtool_text())
def test_fuzz_ethtool_parsers(text):
    tune = vpsnet_tune
    channels = inventory.parse_ethtool_channels(text)
    assert channels is None or (set(channels) == {"rx", "tx", "other", "combined"} and all(
        v is None or (isinstance(v, int) and 0 <= v <= MAX_INT) for v in channels.values()))
    parsed = tune.parse_ethtool(text)
    assert set(parsed) == {"max", "current"}
    for section in parsed.values():
        assert all(v is None or (isinstance(v, int) and 0 <= v < 10**10)
                   for v in section.values())
    assert tune.parse_adaptive_rx(text) in (None, True, False)
    # what the role does next with it must not raise either
    target = tune.ethtool_target("ena", parsed, parsed, 4)
    tune.ethtool_diff(target, parsed, parsed, None)
    COUNTS.add("ethtool text", rejected=channels is None)  # refused: no maxima


# --------------------------------------------------------------------------- /proc/interrupts

IRQ_NAMES = st.one_of(
    st.sampled_from(["ens5-Tx-Rx-0", "virtio1-input.0", "virtio1-output.3", "virtio1-virtqueues",
                     "gve-ntfy-blk2@pci:0000:00:04.0", "eth0-tx", "eth0-q1-rx", "ena-mgmnt"]),
    HUGE.map(lambda d: "ens5-Tx-Rx-" + d),
    ODD_DIGITS.map(lambda d: "virtio1-input." + d),
    st.text(max_size=30),
)


@st.composite
def interrupts_text(draw: st.DrawFn) -> str:
    ncpu = draw(st.integers(0, 6))
    lines = [draw(SPACE) + " ".join(f"CPU{i}" for i in range(ncpu))]
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.integers(0, 4)) == 0:
            lines.append(draw(st.text(max_size=60)))
            continue
        irq = draw(st.one_of(st.integers(0, 2**40).map(str), ODD_DIGITS, HUGE,
                             st.sampled_from(["NMI", "LOC", "ERR"])))
        counts = [draw(NUMBERISH) for _ in range(draw(st.integers(0, ncpu + 1)))]
        tail = draw(st.lists(st.sampled_from(["PCI-MSI", "IR-PCI-MSIX-0000:00:05.0", "edge",
                                              "65536-edge", "xen-dyn"]), max_size=3))
        lines.append(draw(SPACE) + irq + ":" + draw(SPACE) + " ".join(counts) + " "
                     + " ".join(tail) + " " + draw(IRQ_NAMES))
    return join_lines(draw, lines)


@FUZZ
@given(interrupts_text(), st.sampled_from(["ena", "virtio_net", "gve", "vif", None]))
def test_fuzz_interrupts_parsers(tmp_path, text, driver):
    table = inventory.parse_interrupts(text)
    assert all(isinstance(k, int) and 0 <= k <= MAX_INT and isinstance(v, str) and v
               for k, v in table.items())
    for name in table.values():
        for restricted in (True, False):
            found = vpsnet_nic.queue_irq(driver, "ens5", "virtio1", name, restricted)
            assert found is None or (found[0] is None or 0 <= found[0] < 10**6)
    # the boot-time/hotplug script's own parser
    script = irq_affinity()
    proc = tmp_path / "proc"
    proc.mkdir(exist_ok=True)
    (proc / "interrupts").write_bytes(text.encode("utf-8", "surrogateescape")
                                      if text.isascii() else text.encode("utf-8", "replace"))
    mine = script.interrupts(str(tmp_path))
    assert all(isinstance(k, int) and 0 <= k < 10**10 for k in mine)
    for name in mine.values():
        found = script.queue_of(driver or "", "ens5", name)
        assert found is None or 0 <= found[0] < 10**6
    COUNTS.add("interrupts text", rejected=not table)  # refused: no IRQ lines


def test_interrupts_of_non_utf8_bytes(tmp_path):
    """The script reads /proc/interrupts itself: bytes that are not UTF-8 are replaced."""
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/interrupts").write_bytes(b"CPU0\n 27: 5 PCI-MSI ens5-Tx-Rx-0\xff\n")
    assert list(irq_affinity().interrupts(str(tmp_path))) == [27]
    assert os.path.exists(tmp_path / "proc/interrupts")


def test_fuzz_counts_are_reported():
    if not COUNTS:
        pytest.skip("the fuzz tests did not run in this session")
    assert all(COUNTS[cls].generated > 0 for cls in COUNTS.classes())
