"""Fuzzing the lab spec loader: whatever the input, `load` (a file) and `parse`
(data from code) return a valid Spec or raise SpecError with one printable line
per problem, never any other exception; each class of bad input is refused with
a problem naming its field.

Run with -s to see how many inputs of each class were generated, accepted and
rejected (the counts are printed when the module finishes).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testlib.input_counts import InputCounts

from vpsnet_lab import spec as spec_mod
from vpsnet_lab import specfile
from vpsnet_lab.paths import KERNEL_SERIES, release_series
from vpsnet_lab.spec import Spec, SpecError
from vpsnet_lab.specparse import load, parse

from .test_spec import GOOD, mutate

FUZZ = settings(max_examples=80, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# GOOD with every optional part present, so every field can be mutated.
BASE: dict[str, Any] = copy.deepcopy(GOOD)
BASE["regions"] = {"us-east-1": {"rtt_ms": 180, "bandwidth_mbit": 1000}}
BASE["services"] = [{"name": "repo", "guest_port": 80, "host_port": 40300}]
BASE["accel"] = "tcg"
BASE["guests"][1].update(firmware="uefi-secureboot", mok_certs=["/etc/fleet.der"])

COUNTS = InputCounts("lab spec fuzz")
_print_counts = COUNTS.report_fixture()


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "spec.yml"


def check_valid(spec: Spec) -> None:
    """What every accepted spec guarantees, whatever its input was."""
    assert parse(spec_mod.to_data(spec), spec.source) == spec  # as the lab state keeps it
    names = [g.name for g in spec.guests]
    assert len(set(names)) == len(names) and spec_mod.NAME_RE.fullmatch(spec.name)
    for g in spec.guests:
        assert spec_mod.NAME_RE.fullmatch(g.name)
        assert spec_mod.INSTANCE_TYPE_RE.fullmatch(g.instance_type)
        assert g.kernel in KERNEL_SERIES or release_series(g.kernel)
        assert g.cloud in spec_mod.CLOUDS and g.firmware in spec_mod.FIRMWARES
        for value, lo, hi in [(g.vcpus, 1, spec_mod.MAX_VCPUS), (g.ssh_port, 1024, 65535),
                              (g.memory_mb, spec_mod.MIN_MEMORY_MB, spec_mod.MAX_MEMORY_MB),
                              *((n.queues, 1, spec_mod.MAX_QUEUES) for n in g.nics)]:
            assert type(value) is int and lo <= value <= hi
        assert len(g.nics) <= spec_mod.MAX_NICS
        for text in (g.region, g.zone, *g.mok_certs):
            assert text and text.isprintable()


def check_error(exc: SpecError) -> None:
    assert exc.problems
    for line in str(exc).splitlines():
        assert line.isprintable() and len(line) < 600, line


def outcome(cls: str, data: Any, source: str = "fuzz.yml") -> Spec | SpecError:
    """parse(DATA): a valid Spec or a SpecError, counted under CLS."""
    try:
        spec = parse(data, source)
    except SpecError as exc:
        check_error(exc)
        COUNTS.add(cls, rejected=True)
        return exc
    check_valid(spec)
    COUNTS.add(cls, rejected=False)
    return spec


def file_outcome(cls: str, path: Path, content: bytes | str) -> Spec | SpecError:
    """load() of a file holding CONTENT: a valid Spec or a SpecError, counted under CLS."""
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    try:
        spec = load(path)
    except SpecError as exc:
        check_error(exc)
        assert exc.source == str(path)
        COUNTS.add(cls, rejected=True)
        return exc
    check_valid(spec)
    COUNTS.add(cls, rejected=False)
    return spec


def rejected(result: Spec | SpecError) -> list[str]:
    assert isinstance(result, SpecError), "accepted a bad spec"
    return result.problems


# --- strategies ---------------------------------------------------------------

TOKENS = ["guests", "name", "kernel", "vcpus", "nics", "queues", "link", "regions", ":", ": ",
          " ", "  ", "\n", "\n  ", "- ", "-", "[", "]", "{", "}", ",", "&a ", "*a", "&b ", "*b",
          "<<: ", "!!int ", "!!str ", "!!binary ", "!!python/object:os.system ", "!foo ", "? ",
          "'", '"', "#", "|", ">", "%YAML 1.1\n", "---\n", "...\n", "~", "yes", "no", "6.10",
          "6.1", "1e400", ".nan", ".inf", "0x1f", "0o17", "017", "1_000", "190:20:30",
          "2024-13-45", "\t", "\ufeff", "\x00", "\x85", "\u2028", "é", "\\n", "a1", "aws", "9" * 40]
yamlish = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=6)), max_size=60).map(
    "".join)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
keys = st.one_of(st.text(max_size=8), st.integers(-5, 5), st.booleans(), st.none(),
                 st.floats(allow_nan=False, width=16))
nested = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=25)


def plausible(valid: list[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(valid), st.sampled_from(valid), nested)


guest_fields = st.fixed_dictionaries({}, optional={
    "name": plausible(["a1", "g1", "b-2", "A1", "a1\n", ""]),
    "cloud": plausible(["aws", "gcp", "azure"]),
    "region": plausible(["us-east-1", "asia-east1", "us-east-1\n"]),
    "zone": plausible(["us-east-1a", "asia-east1-b", "us-east-1"]),
    "instance_type": plausible(["m5.large", "e2-standard-2", "m5,large"]),
    "kernel": plausible(["6.1", "6.12", "6.1.0-47-cloud-amd64", 6.1, 6.12, "5.10"]),
    "vcpus": plausible([1, 2, 0, 9, True]),
    "memory_mb": plausible([512, 1024, 100]),
    "nics": plausible([[], [{"queues": 4}], [{"link": "g1"}], [{"link": "a1"}]]),
    "firmware": plausible(["bios", "uefi-secureboot"]),
})
TEMPLATES = [{k: v for k, v in g.items() if k not in ("nics", "forwards")} for g in GOOD["guests"]]


@st.composite
def guest_like(draw: st.DrawFn) -> dict[str, Any]:
    """A valid guest, a valid one with some fields replaced, or random fields."""
    guest = {**draw(st.sampled_from(TEMPLATES)), "name": draw(st.sampled_from(["a1", "b2", "c3"]))}
    fields = draw(guest_fields)
    return draw(st.sampled_from([guest, {**guest, **fields}, fields]))


spec_like = st.fixed_dictionaries({"guests": st.lists(guest_like(), max_size=4)}, optional={
    "name": plausible(["t", "lab-1", "T"]), "base_port": plausible([40022, 80, 70000]),
    "accel": plausible(["auto", "kvm", "tcg", "xen"]), "regions": nested, "services": nested})


def dump(data: Any, draw: st.DrawFn) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=draw(st.booleans()),
                          default_flow_style=draw(st.sampled_from([None, True, False])))


# Every scalar field of BASE, as a path, and what a bad value of it looks like.
INT_FIELDS = {("base_port",): (1024, 60000), ("guests", 0, "vcpus"): (1, 8),
              ("guests", 0, "memory_mb"): (384, 1 << 20), ("guests", 1, "ssh_port"): (1024, 65535),
              ("guests", 0, "nics", 0, "queues"): (1, 16),
              ("guests", 0, "forwards", 0, "guest_port"): (1, 65535),
              ("guests", 0, "forwards", 0, "host_port"): (1024, 65535),
              ("regions", "us-east-1", "rtt_ms"): (0, 2000),
              ("regions", "us-east-1", "bandwidth_mbit"): (1, 400000),
              ("services", 0, "guest_port"): (1, 65535),
              ("services", 0, "host_port"): (1024, 65535)}
STR_FIELDS = [("name",), ("accel",), ("guests", 0, "name"), ("guests", 0, "cloud"),
              ("guests", 0, "region"), ("guests", 0, "zone"), ("guests", 0, "instance_type"),
              ("guests", 0, "kernel"), ("guests", 1, "firmware"), ("guests", 1, "mok_certs", 0),
              ("guests", 0, "nics", 1, "link"), ("services", 0, "name")]
CONTROL = ["\n", "\r", "\r\n", "\t", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\x0b"]


def mutated(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    return mutate(path, value, BASE)


def names_field(problems: list[str], path: tuple[Any, ...]) -> bool:
    """Whether a problem names the field at PATH: guests[0] (a1).nics[1].link, or as
    the file reader says it: guests[0].nics[1].link (line 7)."""
    if len(path) == 1:
        return any(re.match(re.escape(path[0]) + r"(?: \(line \d+\))?:", p) for p in problems)
    parts, i = [], 0
    while i < len(path):
        if i + 1 < len(path) and isinstance(path[i + 1], int):
            parts.append(f"{path[i]}[{path[i + 1]}]")
            i += 2
        else:
            parts.append(str(path[i]))
            i += 1
    pattern = r"(?: \([a-z0-9-]+\))?\.".join(re.escape(p) for p in parts)
    return any(re.match(pattern + r"(?: \(line \d+\))?:", p) for p in problems)


def test_base_spec_is_valid() -> None:
    assert isinstance(outcome("good specs", BASE), Spec)
    assert names_field(["guests[0] (a1).nics[1].link: no"], ("guests", 0, "nics", 1, "link"))
    assert not names_field(["guests[0] (a1).nics[0].link: no"], ("guests", 0, "nics", 1, "link"))


# --- the loader never fails with anything but SpecError ---------------------------

@FUZZ
@given(data=st.binary(max_size=600))
def test_random_bytes(spec_file: Path, data: bytes) -> None:
    file_outcome("random bytes", spec_file, data)


@FUZZ
@given(text=yamlish)
def test_random_yaml_ish_text(spec_file: Path, text: str) -> None:
    file_outcome("YAML-ish text", spec_file, text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(data=st.one_of(nested, spec_like), draw=st.data())
def test_random_structures_as_files_and_as_data(spec_file: Path, data: Any,
                                                draw: st.DataObject) -> None:
    direct = outcome("random structures (data)", data, str(spec_file))
    from_file = file_outcome("random structures (file)", spec_file, dump(data, draw.draw))
    # what the file says is what the data says
    assert isinstance(from_file, Spec) == isinstance(direct, Spec), (from_file, direct)
    if isinstance(from_file, Spec):
        assert from_file == direct


# --- each class of bad input is refused, naming its field ---------------------------

@st.composite
def alias_bombs(draw: st.DrawFn) -> str:
    levels, width = draw(st.integers(1, 12)), draw(st.integers(2, 20))
    stem = draw(st.sampled_from(["a", "lol", "x_"]))
    lines = [f'{stem}0: &{stem}0 {draw(st.sampled_from(["lol", "{name: a1}", "[1]"]))}']
    for i in range(1, levels + 1):
        refs = ", ".join([f"*{stem}{i - 1}"] * width)
        lines.append(f"{stem}{i}: &{stem}{i} [{refs}]")
    use = draw(st.sampled_from([f"guests: *{stem}{levels}", f"name: *{stem}{levels}",
                                f"regions:\n  <<: *{stem}0", f"extra: *{stem}{levels}"]))
    text = "\n".join([*lines, use]) + "\n"
    return draw(st.sampled_from([text, yaml.safe_dump(GOOD) + text]))


@FUZZ
@given(text=alias_bombs())
def test_alias_bombs_are_refused_at_their_first_anchor(spec_file: Path, text: str) -> None:
    problems = rejected(file_outcome("alias bombs", spec_file, text))
    assert len(problems) == 1 and "anchors and aliases are not allowed" in problems[0]
    assert "(line " in problems[0]


@st.composite
def deep_documents(draw: st.DrawFn) -> tuple[str, int]:
    depth = draw(st.integers(1, 2000))
    style = draw(st.sampled_from(["flow-seq", "flow-map", "mixed", "block-map", "block-seq"]))
    if style.startswith("block"):
        depth = min(depth, 120)  # indentation grows as depth squared
        body = ("- " * depth + "x\n" if style == "block-seq" else
                "".join("  " * i + "k:\n" for i in range(depth)) + "  " * depth + "x\n")
        return "extra:\n" + "".join("  " + line + "\n" for line in body.splitlines()), depth + 1
    opener = {"flow-seq": ["["], "flow-map": ["{k: "], "mixed": ["[", "{k: "]}[style]
    opens = [opener[i % len(opener)] for i in range(depth)]
    closes = "".join("]" if o == "[" else "}" for o in reversed(opens))
    return "extra: " + "".join(opens) + "x" + closes + "\n", depth + 1


@FUZZ
@given(doc=deep_documents())
def test_deep_nesting_is_refused_before_it_is_walked(spec_file: Path,
                                                     doc: tuple[str, int]) -> None:
    text, depth = doc
    problems = rejected(file_outcome("deep nesting (file)", spec_file, text))
    deep = any("nested deeper than 16 levels" in p for p in problems)
    assert deep == (depth > specfile.MAX_DEPTH), (depth, problems)


@settings(FUZZ, max_examples=30)  # up to 5000 nodes each: the slowest inputs here
@given(n=st.one_of(st.integers(1, 200), st.integers(2490, 2510), st.integers(4990, 5010),
                   st.integers(5011, 6000)), shape=st.sampled_from(["flow", "block", "keys"]))
def test_too_many_values_are_refused_before_they_are_built(spec_file: Path, n: int,
                                                           shape: str) -> None:
    text, nodes = {  # nodes: the top mapping, its key(s), the list, the items
        "flow": ("extra: [" + "1, " * n + "]\n", n + 3),
        "block": ("extra:\n" + "  - 1\n" * n, n + 3),
        "keys": ("".join(f"k{i}: 1\n" for i in range(n)), 2 * n + 1)}[shape]
    problems = rejected(file_outcome("too many values", spec_file, text))
    many = any(f"more than {specfile.MAX_NODES} values" in p for p in problems)
    assert many == (nodes > specfile.MAX_NODES), (n, shape, problems)


@FUZZ
@given(depth=st.integers(1, 20000), where=st.sampled_from(list(INT_FIELDS) + STR_FIELDS))
def test_deep_data_from_code_is_refused_without_recursing(depth: int,
                                                          where: tuple[Any, ...]) -> None:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    assert names_field(rejected(outcome("deep nesting (data)", mutated(where, value))), where)


bad_utf8 = st.sampled_from([b"\xff", b"\xfe", b"\xc3", b"\xe9", b"\x80", b"\xc0\xaf",
                            b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xf4\x90\x80\x80"])


@FUZZ
@given(bad=bad_utf8, draw=st.data())
def test_non_utf8_is_refused_with_its_line(spec_file: Path, bad: bytes,
                                           draw: st.DataObject) -> None:
    good = dump(BASE, draw.draw).encode()
    at = draw.draw(st.integers(0, len(good)))
    problems = rejected(file_outcome("non-UTF-8", spec_file, good[:at] + bad + good[at:]))
    line = good[:at].count(b"\n") + 1
    assert problems == [f"line {line}: not UTF-8 (byte 0x{bad[0]:02x}): a lab spec must be "
                        "UTF-8 text"]


def mappings(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(data, dict):
        yield path
        for k, v in data.items():
            yield from mappings(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from mappings(v, (*path, i))


MAPPINGS = list(mappings(BASE))


def at(data: dict[str, Any], path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


@FUZZ
@given(where=st.sampled_from(MAPPINGS), key=st.one_of(
    st.integers(), st.booleans(), st.none(), st.floats(), st.tuples(st.integers())),
    value=scalars, as_file=st.booleans(), draw=st.data())
def test_non_string_keys_are_refused(spec_file: Path, where: tuple[Any, ...], key: Any,
                                     value: Any, as_file: bool, draw: st.DataObject) -> None:
    data = copy.deepcopy(BASE)
    at(data, where)[key] = value
    if as_file and not isinstance(key, tuple):  # YAML has no tuples
        problems = rejected(file_outcome("non-string keys (file)", spec_file,
                                         dump(data, draw.draw)))
    else:
        problems = rejected(outcome("non-string keys (data)", data))
    assert any("not a string" in p for p in problems), problems


def flow(data: Any, dup: tuple[Any, ...], pick: int, here: tuple[Any, ...] = ()) -> str:
    """DATA as JSON (flow YAML), with one key of the mapping at DUP written twice."""
    if isinstance(data, dict):
        items = [f"{json.dumps(k)}: {flow(v, dup, pick, (*here, k))}" for k, v in data.items()]
        if here == dup:
            items.append(items[pick % len(items)])
        return "{" + ", ".join(items) + "}"
    if isinstance(data, list):
        return "[" + ", ".join(flow(v, dup, pick, (*here, i)) for i, v in enumerate(data)) + "]"
    return json.dumps(data)


@FUZZ
@given(where=st.sampled_from(MAPPINGS), pick=st.integers(0, 20))
def test_duplicate_keys_are_refused(spec_file: Path, where: tuple[Any, ...], pick: int) -> None:
    problems = rejected(file_outcome("duplicate keys", spec_file, flow(BASE, where, pick)))
    assert len(problems) == 1 and "duplicate key (first on line 1)" in problems[0], problems


@FUZZ
@given(text=st.one_of(st.from_regex(r"[0-9]{1,2}\.[0-9]{1,3}", fullmatch=True),
                      st.from_regex(r"[0-9_]{1,5}", fullmatch=True),
                      st.sampled_from(["6.1", "6.10", "6.12", "06.1", "6.1e+0", "0x61", "6:10"]),
                      ).filter(lambda t: not isinstance(yaml.safe_load(f"k: {t}")["k"], str)))
def test_unquoted_numeric_kernels_are_refused_as_written(spec_file: Path, text: str) -> None:
    yml = yaml.safe_dump(BASE, sort_keys=False).replace("kernel: '6.1'", f"kernel: {text}", 1)
    problems = rejected(file_outcome("unquoted numeric kernel", spec_file, yml))
    assert any(p.startswith("guests[0] (a1).kernel: the number ") and
               f'quote it: kernel: "{text}"' in p for p in problems), problems
    if text in KERNEL_SERIES:  # quoted, the same text is a good kernel
        quoted = yml.replace(f"kernel: {text}", f'kernel: "{text}"')
        assert isinstance(file_outcome("quoted kernel", spec_file, quoted), Spec)


@FUZZ
@given(where=st.sampled_from(STR_FIELDS), char=st.sampled_from(CONTROL),
       place=st.sampled_from(["end", "start", "middle"]), as_file=st.booleans(),
       draw=st.data())
def test_control_characters_in_strings_are_refused(spec_file: Path, where: tuple[Any, ...],
                                                   char: str, place: str, as_file: bool,
                                                   draw: st.DataObject) -> None:
    good = at(BASE, where)
    value = {"end": good + char, "start": char + good,
             "middle": good[:1] + char + good[1:]}[place]
    data = mutated(where, value)
    problems = rejected(file_outcome("control chars in strings (file)", spec_file,
                                     dump(data, draw.draw)) if as_file else
                        outcome("control chars in strings (data)", data))
    assert names_field(problems, where), problems


def bad_numbers(lo: int, hi: int, yaml_safe: bool) -> st.SearchStrategy[Any]:
    big = 10 ** (90 if yaml_safe else 5000)
    return st.one_of(
        st.booleans(), st.floats(), st.sampled_from([float("nan"), float("inf"), -float("inf")]),
        st.integers(lo, hi).map(float), st.integers(lo, hi).map(str),
        st.integers(max_value=lo - 1), st.integers(min_value=hi + 1),
        st.sampled_from([big, -big]), st.lists(st.integers(lo, hi), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@FUZZ
@given(where=st.sampled_from(list(INT_FIELDS)), as_file=st.booleans(), draw=st.data())
def test_bad_numbers_are_refused(spec_file: Path, where: tuple[Any, ...], as_file: bool,
                                 draw: st.DataObject) -> None:
    value = draw.draw(bad_numbers(*INT_FIELDS[where], yaml_safe=as_file))
    data = mutated(where, value)
    problems = rejected(file_outcome("bad numbers (file)", spec_file, dump(data, draw.draw))
                        if as_file else outcome("bad numbers (data)", data))
    assert names_field(problems, where), problems


GOOD_RANGES = {("guests", 0, "vcpus"): (1, 8), ("guests", 0, "memory_mb"): (384, 1 << 20),
               ("guests", 0, "nics", 0, "queues"): (1, 16),
               ("regions", "us-east-1", "rtt_ms"): (0, 2000),
               ("regions", "us-east-1", "bandwidth_mbit"): (1, 400000),
               ("guests", 0, "forwards", 0, "guest_port"): (1, 65535)}


@FUZZ
@given(where=st.sampled_from(list(GOOD_RANGES)), as_file=st.booleans(), draw=st.data())
def test_numbers_in_range_are_accepted(spec_file: Path, where: tuple[Any, ...], as_file: bool,
                                       draw: st.DataObject) -> None:
    value = draw.draw(st.integers(*GOOD_RANGES[where]))
    data = mutated(where, value)
    got = (file_outcome("good numbers (file)", spec_file, dump(data, draw.draw)) if as_file
           else outcome("good numbers (data)", data))
    assert isinstance(got, Spec), got
    if where[0] == "regions":
        assert got.regions["us-east-1"][where[-1]] == value
