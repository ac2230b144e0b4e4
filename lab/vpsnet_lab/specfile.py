"""Reading a lab spec file, bounded so that no file can crash or stall vpsnet-lab.

A spec is a small hand-written file. Anything else is refused with one line
naming the line and the field: more than MAX_BYTES, not a regular file, not
UTF-8, invalid YAML, anchors and aliases (a "billion laughs" document is
refused at its first anchor, before anything is expanded), nesting deeper
than MAX_DEPTH, more than MAX_NODES values, keys that are not strings,
duplicate keys, and YAML types a spec never holds (dates, binary, sets,
custom tags). PyYAML's pure-Python parser (needed to refuse while composing)
takes about 0.1 ms per node on a loaded 2-core machine: the caps keep any
file under a second.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# A 32-guest spec (the most a lab has) is about 15 KiB and 1500 nodes.
MAX_BYTES = 64 * 1024
MAX_NODES = 5000
# The deepest real path is top / guests / [i] / nics / [j]: 5 collections.
MAX_DEPTH = 16

_TAG = "tag:yaml.org,2002:"
_STR, _SEQ, _MAP = _TAG + "str", _TAG + "seq", _TAG + "map"
_SCALARS = {_TAG + "int": "a number", _TAG + "float": "a number", _TAG + "bool": "a boolean",
            _TAG + "null": "null"}
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,40}")


class SpecFileError(Exception):
    """What is wrong with the file, as one line (the caller adds the file name)."""


class YamlFloat(float):
    """A float as written in the file, for messages: YAML reads `6.10` as 6.1."""

    text: str = ""


class YamlInt(int):
    """An int as written in the file, for messages: YAML 1.1 reads `010` as 8."""

    text: str = ""


def label(key: str) -> str:
    """A mapping key as it appears in a field path: plain, else quoted and short."""
    return key if _PLAIN_KEY.fullmatch(key) else short(key)


def short(value: Any, limit: int = 60) -> str:
    """repr() on one line, cut to LIMIT characters (a value may be 200 KiB)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{label(key)}" if path else label(key)


def _where(path: str, node: Node | Any) -> str:
    mark = getattr(node, "start_mark", None)
    line = f" (line {mark.line + 1})" if mark is not None else ""
    return f"{path or 'top level'}{line}"


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases, more than MAX_NODES values and
    nesting deeper than MAX_DEPTH while composing, so nothing is expanded,
    built or recursed into first."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._path: list[str] = []

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        pushed = index is not None
        if pushed:
            self._path.append(self._step(index))
        try:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            if isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
                kind = "alias *" if isinstance(event, AliasEvent) else "anchor &"
                raise SpecFileError(
                    f"{_where(self._field(), event)}: {kind}{event.anchor}: anchors and aliases "
                    "are not allowed in a lab spec (write the values out)")
            self._nodes += 1
            if self._nodes > MAX_NODES:
                raise SpecFileError(f"{_where(self._field(), event)}: more than {MAX_NODES} "
                                    "values: not a lab spec")
            if not isinstance(event, CollectionStartEvent):
                return super().compose_node(parent, index)
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    raise SpecFileError(f"{_where(self._field(), event)}: nested deeper than "
                                        f"{MAX_DEPTH} levels")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
        finally:
            if pushed:
                self._path.pop()

    @staticmethod
    def _step(index: Any) -> str:
        if isinstance(index, int):
            return f"[{index}]"
        if isinstance(index, ScalarNode):
            return label(str(index.value))
        return "?"

    def _field(self) -> str:
        out = ""
        for step in self._path:
            out += step if step.startswith("[") or not out else "." + step
        return out


def _key(loader: _BoundedLoader, node: Node, path: str) -> str:
    if isinstance(node, ScalarNode) and node.tag == _STR:
        return str(node.value)
    if isinstance(node, ScalarNode):
        kind = _SCALARS.get(node.tag, f"a {node.tag.removeprefix(_TAG)}")
        raise SpecFileError(f"{_where(path, node)}: key {short(node.value)} is {kind}, not a "
                            "string: keys must be strings (quote it)")
    kind = "a list" if isinstance(node, SequenceNode) else "a mapping"
    raise SpecFileError(f"{_where(path, node)}: a key is {kind}, not a string: keys must be "
                        "strings")


def _scalar(loader: _BoundedLoader, node: ScalarNode, path: str) -> Any:
    if node.tag == _STR:
        return str(node.value)
    if node.tag not in _SCALARS:
        raise SpecFileError(f"{_where(path, node)}: {short(node.value)} is a YAML "
                            f"{node.tag.removeprefix(_TAG)}, which a lab spec never holds "
                            "(quote it if it is a string)")
    try:
        value = loader.construct_object(node)
    except (ValueError, OverflowError, KeyError, IndexError, TypeError, yaml.YAMLError):
        # PyYAML's constructors on explicitly tagged junk: `!!int abc` (ValueError),
        # `!!int ""` (IndexError), `!!bool maybe` (KeyError), 5000 digits (ValueError)
        raise SpecFileError(f"{_where(path, node)}: {short(node.value)} is not a valid "
                            f"{node.tag.removeprefix(_TAG)}") from None
    if isinstance(value, float | int) and not isinstance(value, bool):
        kept = YamlFloat(value) if isinstance(value, float) else YamlInt(value)
        kept.text = str(node.value)
        return kept
    return value


_QUIET_BREAKS = re.compile("[\x80-\x9f\u2028\u2029]")


def _data(loader: _BoundedLoader, node: Node, path: str) -> Any:
    """Plain Python data from a composed node (depth is already bounded)."""
    if isinstance(node, ScalarNode):
        # As written, not as read: YAML 1.1 folds NEL and the Unicode line and
        # paragraph separators in a quoted value into a space ("/x<NEL>" reads "/x ").
        written = loader.buffer[node.start_mark.index:node.end_mark.index]
        bad = _QUIET_BREAKS.search(written)
        if bad is not None:
            raise SpecFileError(f"{_where(path, node)}: character {short(bad.group())} is not "
                                "allowed in a lab spec (control character)")
        return _scalar(loader, node, path)
    if isinstance(node, SequenceNode) and node.tag == _SEQ:
        return [_data(loader, item, join(path, i)) for i, item in enumerate(node.value)]
    if isinstance(node, MappingNode) and node.tag == _MAP:
        out: dict[str, Any] = {}
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = _key(loader, key_node, path)
            field = join(path, key)
            if key in out:
                raise SpecFileError(f"{_where(field, key_node)}: duplicate key (first on "
                                    f"line {lines[key]})")
            lines[key] = key_node.start_mark.line + 1
            out[key] = _data(loader, value_node, field)
        return out
    raise SpecFileError(f"{_where(path, node)}: a YAML {node.tag.removeprefix(_TAG)}, which a "
                        "lab spec never holds")


def _syntax(text: str, exc: yaml.YAMLError) -> SpecFileError:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[:exc.position].count("\n") + 1
        return SpecFileError(f"line {line}: character {short(chr(exc.character))} is not "
                             "allowed in YAML (control character)")
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = "; ".join(str(p) for p in (getattr(exc, "context", None),
                                      getattr(exc, "problem", None)) if p) or str(exc)
    return SpecFileError(f"{where}invalid YAML: {' '.join(what.split())}")


def parse_text(text: str) -> Any:
    """The data of one YAML document, refused as described above (None if empty)."""
    try:
        loader = _BoundedLoader(text)  # the reader refuses control characters here
        try:
            node = loader.get_single_node()
            return None if node is None else _data(loader, node, "")
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise _syntax(text, exc) from None


def read_text(path: Path) -> str:
    """The file's text: a regular file of at most MAX_BYTES, UTF-8."""
    try:
        # O_NONBLOCK: a FIFO given as the spec must not hang the open
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise SpecFileError(f"cannot read: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise SpecFileError(f"cannot read: {kind}")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(MAX_BYTES + 1)
        except OSError as exc:
            raise SpecFileError(f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise SpecFileError(f"larger than {MAX_BYTES} bytes: not a lab spec")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise SpecFileError(f"line {line}: not UTF-8 (byte 0x{data[exc.start]:02x}): a lab "
                            "spec must be UTF-8 text") from None


def read(path: Path) -> Any:
    return parse_text(read_text(path))
