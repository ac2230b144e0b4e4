"""vpsnet-abi diff: compatible / additive / breaking between two interface manifests.

Pure functions over manifest documents (manifest.load_manifest reads them); the
CLI (abi.py) and tests import it. See tools/README.md for the verdict rules.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

# diff severities, in increasing order; the verdict is the worst one found
NOTE = "note"  # printed, verdict stays compatible
ADDITIVE = "additive"
BREAKING = "breaking"
_RANK = {NOTE: 0, ADDITIVE: 1, BREAKING: 2}
COMPATIBLE = "compatible"


@dataclass
class Finding:
    severity: str  # note | additive | breaking
    kind: str  # abi_major, parameter, metric, label, health_state, uevent, proc, build, ...
    subject: str
    message: str


@dataclass
class DiffResult:
    verdict: str  # compatible | additive | breaking
    old_version: str | None
    new_version: str | None
    old_abi_major: int
    new_abi_major: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def abi_major_bumped(self) -> bool:
        return self.new_abi_major > self.old_abi_major

    @property
    def undeclared_break(self) -> bool:
        """Breaking findings other than the major change itself, without a major bump."""
        return not self.abi_major_bumped and any(
            f.severity == BREAKING and f.kind != "abi_major" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "old": {"version": self.old_version, "abi_major": self.old_abi_major},
            "new": {"version": self.new_version, "abi_major": self.new_abi_major},
            "abi_major_bumped": self.abi_major_bumped,
            "undeclared_break": self.undeclared_break,
            "findings": [asdict(f) for f in self.findings],
        }


Entry = dict[str, Any]


def _pairs(old: Iterable[Entry], new: Iterable[Entry]
           ) -> Iterator[tuple[str, Entry | None, Entry | None]]:
    """(name, old entry, new entry) matched by name: the old ones in their
    order (new None when removed), then the added ones (old None)."""
    o = {i["name"]: i for i in old}
    n = {i["name"]: i for i in new}
    for name, entry in o.items():
        yield name, entry, n.get(name)
    for name, entry in n.items():
        if name not in o:
            yield name, None, entry


def _num(v: Any) -> int | float | None:
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


def _strings(v: Any) -> list[str]:
    return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []


def _section(doc: dict[str, Any], key: str) -> dict[str, Any]:
    v = doc.get(key)
    return v if isinstance(v, dict) else {}


def _opt_str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _range_changes(name: str, old: Entry, new: Entry) -> list[Finding]:
    """Narrowed bounds are breaking (a value that loaded before is refused), widened additive."""
    out: list[Finding] = []
    for bound in ("min", "max"):
        o, n = _num(old.get(bound)), _num(new.get(bound))
        if o == n:
            continue
        if o is None:  # unbounded -> bounded
            out.append(Finding(BREAKING, "parameter", name,
                               f"parameter {name}: {bound} bound added ({n}): range narrowed"))
        elif n is None:
            out.append(Finding(ADDITIVE, "parameter", name,
                               f"parameter {name}: {bound} bound {o} removed: range widened"))
        elif (n > o) if bound == "min" else (n < o):
            out.append(Finding(BREAKING, "parameter", name,
                               f"parameter {name}: {bound} {o} -> {n}: range narrowed"))
        else:
            out.append(Finding(ADDITIVE, "parameter", name,
                               f"parameter {name}: {bound} {o} -> {n}: range widened"))
    return out


def _added_removed(kind: str, what: str, old: Iterable[str], new: Iterable[str]) -> list[Finding]:
    o, n = list(old), list(new)
    out = [Finding(BREAKING, kind, x, f"{what} {x} removed") for x in o if x not in n]
    out += [Finding(ADDITIVE, kind, x, f"{what} {x} added") for x in n if x not in o]
    return out


def _header_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Finding]:
    """Module name, ABI major and exposition format."""
    f: list[Finding] = []
    if old.get("module") != new.get("module"):
        f.append(Finding(BREAKING, "module", str(new.get("module")),
                         f"module name {old.get('module')} -> {new.get('module')}"))
    om, nm = int(old["abi_major"]), int(new["abi_major"])
    if om != nm:
        way = "bumped" if nm > om else "lowered"
        f.append(Finding(BREAKING, "abi_major", "abi_major",
                         f"ABI major {way} {om} -> {nm}: declared incompatible"))
    if old.get("exposition") != new.get("exposition"):
        f.append(Finding(BREAKING, "exposition", "exposition",
                         f"metrics exposition format {old.get('exposition')!r} -> "
                         f"{new.get('exposition')!r}"))
    return f


def _parameter_changes(old: list[Entry], new: list[Entry]) -> list[Finding]:
    f: list[Finding] = []
    for name, p, q in _pairs(old, new):
        if q is None:
            f.append(Finding(BREAKING, "parameter", name,
                             f"parameter {name} removed (a modprobe.d option setting it is "
                             "ignored: the kernel logs 'unknown parameter' and loads "
                             "without it)"))
        elif p is None:
            f.append(Finding(ADDITIVE, "parameter", name,
                             f"parameter {name} added ({q.get('type')}, default "
                             f"{json.dumps(q.get('default'))})"))
        elif p.get("type") != q.get("type"):
            f.append(Finding(BREAKING, "parameter", name,
                             f"parameter {name} retyped {p.get('type')} -> {q.get('type')}"))
        else:
            f += _range_changes(name, p, q)
            if p.get("default") != q.get("default"):
                f.append(Finding(NOTE, "parameter", name,
                                 f"parameter {name}: default {json.dumps(p.get('default'))} -> "
                                 f"{json.dumps(q.get('default'))} (behaviour change where "
                                 "unset)"))
    return f


def _metric_changes(old: list[Entry], new: list[Entry]) -> list[Finding]:
    f: list[Finding] = []
    for name, m, n in _pairs(old, new):
        if n is None:
            f.append(Finding(BREAKING, "metric", name, f"metric family {name} removed"))
            continue
        if m is None:
            f.append(Finding(ADDITIVE, "metric", name,
                             f"metric family {name} added ({n.get('type')})"))
            continue
        if m.get("type") != n.get("type"):
            f.append(Finding(BREAKING, "metric", name,
                             f"metric family {name} retyped {m.get('type')} -> {n.get('type')}"))
        ol, nl = _strings(m.get("labels")), _strings(n.get("labels"))
        f += [Finding(BREAKING, "label", f"{name}{{{lab}}}",
                      f"metric family {name}: label {lab} removed")
              for lab in ol if lab not in nl]
        f += [Finding(BREAKING, "label", f"{name}{{{lab}}}",
                      f"metric family {name}: label {lab} added (changes series "
                      "identity: recording rules, joins and alerts)")
              for lab in nl if lab not in ol]
    return f


def _uevent_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Finding]:
    ou, nu = _section(old, "uevent"), _section(new, "uevent")
    f = [Finding(BREAKING, "uevent", key, f"uevent {key} {ou.get(key)!r} -> {nu.get(key)!r}")
         for key in ("action", "subsystem") if ou.get(key) != nu.get(key)]
    return f + _added_removed("uevent", "uevent key",
                              _strings(ou.get("keys")), _strings(nu.get("keys")))


def _build_flag_notes(old: dict[str, Any], new: dict[str, Any]) -> list[Finding]:
    """Build flags: reported, never part of the ABI."""
    ob, nb = _section(old, "build"), _section(new, "build")
    return [Finding(NOTE, "build", key,
                    f"build flag {key}: {json.dumps(ob.get(key))} -> "
                    f"{json.dumps(nb.get(key))} (not part of the ABI)")
            for key in sorted(set(ob) | set(nb)) if ob.get(key) != nb.get(key)]


def diff_manifests(old: dict[str, Any], new: dict[str, Any]) -> DiffResult:
    """Compare two manifests; one finding per difference, the verdict is the worst."""
    f = _header_changes(old, new)
    f += _parameter_changes(old["parameters"], new["parameters"])
    f += _metric_changes(old["metrics"], new["metrics"])
    # health states: values of the `state` label and of the uevents
    f += _added_removed("health_state", "health state",
                        _strings(old.get("health_states")), _strings(new.get("health_states")))
    f += _uevent_changes(old, new)
    f += _added_removed("proc", "proc path", _strings(old.get("proc")), _strings(new.get("proc")))
    f += _build_flag_notes(old, new)

    worst = max((_RANK[x.severity] for x in f), default=0)
    verdict = {0: COMPATIBLE, 1: ADDITIVE, 2: BREAKING}[worst]
    return DiffResult(verdict, _opt_str(old.get("version")), _opt_str(new.get("version")),
                      int(old["abi_major"]), int(new["abi_major"]), f)
