"""The load report: which parameters a checkpoint filled, missed or got wrong.

After the rules ran, the tensors are compared with the model's parameters:

- MISSING: a parameter no tensor filled;
- UNEXPECTED: a tensor that neither a rule nor a parameter claimed;
- MISMATCHED: a tensor whose shape differs from its parameter's (or integer vs floating dtype,
  e.g. a packed quantized weight for an unquantized layer). Floating dtypes may differ freely:
  a bf16 checkpoint loads into a model built in fp32, as in mlx-lm.

Names that differ only in their integer path components are folded into one row with the indices
compressed (``model.layers.{0...31}.mlp.experts.{0...63}.up_proj.weight``), so a 64-expert,
32-layer mismatch is a few lines, not six thousand. :meth:`LoadReport.explain` lists, for each
parameter, the rules that produced it and the checkpoint tensors it came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .tensors import is_floating

Info = Tuple[Tuple[int, ...], str]  # (shape, dtype name)


def format_indices(values: Iterable[int]) -> str:
    """``[0,1,2,3]`` → ``{0...3}``; ``[0,2,3,4]`` → ``{0,2...4}``; ``[5]`` → ``5``."""
    vals = sorted(set(values))
    if len(vals) == 1:
        return str(vals[0])
    runs, start, prev = [], vals[0], vals[0]
    for v in vals[1:] + [None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        runs.append(str(start) if start == prev else (f"{start},{prev}" if prev == start + 1 else f"{start}...{prev}"))
        if v is not None:
            start = prev = v
    return "{" + ",".join(runs) + "}"


def _split_name(name: str):
    parts = name.split(".")
    pattern = tuple(None if p.isdigit() else p for p in parts)
    indices = tuple(int(p) for p in parts if p.isdigit())
    return pattern, indices


def _compress(tuples: Sequence[Tuple[int, ...]]) -> List[List[set]]:
    """Cover a set of index tuples with as few cartesian products as this greedy split finds."""
    tuples = sorted(set(tuples))
    if not tuples or not tuples[0]:
        return [[]]
    dims = [sorted({t[i] for t in tuples}) for i in range(len(tuples[0]))]
    if len(tuples) == math.prod(len(d) for d in dims):
        return [[set(d) for d in dims]]
    by_first: Dict[int, List[Tuple[int, ...]]] = {}
    for t in tuples:
        by_first.setdefault(t[0], []).append(t[1:])
    by_rest: Dict[Tuple, List[int]] = {}
    for first, rest in by_first.items():
        by_rest.setdefault(tuple(sorted(rest)), []).append(first)
    lines = []
    for rest, firsts in sorted(by_rest.items(), key=lambda kv: min(kv[1])):
        for sub in _compress(rest):
            lines.append([set(firsts)] + sub)
    return lines


def _render(pattern, index_sets) -> str:
    it = iter(index_sets)
    return ".".join(format_indices(next(it)) if p is None else p for p in pattern)


def compress_names(names: Iterable[str]) -> List[str]:
    """Fold names that differ only in integer components into ``{a...b}`` ranges."""
    groups: Dict[tuple, List[Tuple[int, ...]]] = {}
    for name in names:
        pattern, idx = _split_name(name)
        groups.setdefault(pattern, []).append(idx)
    out = []
    for pattern, tuples in groups.items():
        for sets in _compress(tuples):
            out.append(_render(pattern, sets))
    return sorted(out, key=_natural)


def _natural(text: str):
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in text.replace("{", ".").replace("}", ".").split(".")]


def _fmt(info: Optional[Info]) -> str:
    if info is None:
        return "-"
    shape, dtype = info
    return f"{dtype}[{', '.join(map(str, shape))}]"


@dataclass
class LoadReport:
    """The comparison of sanitized checkpoint tensors with a model's parameters."""

    source: str = ""
    architecture: str = ""
    missing: Dict[str, Info] = field(default_factory=dict)  # parameter -> expected
    unexpected: Dict[str, Info] = field(default_factory=dict)  # tensor -> got
    mismatched: Dict[str, Tuple[Info, Info]] = field(default_factory=dict)  # parameter -> (expected, got)
    loaded: Dict[str, Info] = field(default_factory=dict)  # parameter -> got
    provenance: Dict[str, object] = field(default_factory=dict)  # parameter -> engine.Provenance
    notes: List[str] = field(default_factory=list)
    applied: Dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        parts = [f"{len(self.loaded)} parameters loaded"]
        for label, table in (("missing", self.missing), ("unexpected", self.unexpected), ("mismatched", self.mismatched)):
            if table:
                parts.append(f"{len(table)} {label}")
        if self.applied:
            parts.append("rules applied: " + ", ".join(f"{k} x{v}" for k, v in self.applied.items()))
        return "; ".join(parts)

    def rows(self) -> List[Tuple[str, str, str]]:
        """``(KIND, compressed name, detail)`` rows, MISSING then UNEXPECTED then MISMATCHED."""
        rows = []
        for kind, table, detail in (
            ("MISSING", self.missing, lambda v: f"expected {_fmt(v)}"),
            ("UNEXPECTED", self.unexpected, lambda v: f"got {_fmt(v)}"),
            ("MISMATCHED", self.mismatched, lambda v: f"expected {_fmt(v[0])}, got {_fmt(v[1])}"),
        ):
            by_detail: Dict[str, List[str]] = {}
            for name, value in table.items():
                by_detail.setdefault(detail(value), []).append(name)
            entries = [(n, d) for d, names in by_detail.items() for n in compress_names(names)]
            rows.extend((kind, n, d) for n, d in sorted(entries, key=lambda e: _natural(e[0])))
        return rows

    def table(self) -> str:
        """The mismatch table (empty string when everything matched)."""
        rows = self.rows()
        if not rows:
            return ""
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        lines = [f"  {k.ljust(w0)}  {n.ljust(w1)}  {d}" for k, n, d in rows]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def message(self) -> str:
        counts = ", ".join(
            f"{len(t)} {label}" for label, t in (("missing", self.missing), ("unexpected", self.unexpected), ("mismatched", self.mismatched)) if t
        )
        head = f"checkpoint {self.source} does not fit the {self.architecture} model ({counts})"
        return head + "\n" + self.table()

    def explain(self) -> List[str]:
        """One line per group of parameters: ``PARAM <= rule (op) <= ... <= SOURCES``."""
        groups: Dict[tuple, Dict[str, list]] = {}
        for name in self.loaded:
            prov = self.provenance.get(name)
            pattern, idx = _split_name(name)
            if prov is None:
                key = (pattern, (), ())
                groups.setdefault(key, {"idx": [], "src": []})["idx"].append(idx)
                continue
            src_patterns = tuple(sorted({_split_name(s)[0] for s in prov.sources}))
            key = (pattern, tuple(zip(prov.rules, prov.ops)), src_patterns)
            g = groups.setdefault(key, {"idx": [], "src": []})
            g["idx"].append(idx)
            g["src"].extend(prov.sources)
        lines = []
        for (pattern, chain, _), g in groups.items():
            for sets in _compress(g["idx"]):
                target = _render(pattern, sets)
                if not chain:
                    lines.append(f"{target}  = as stored")
                    continue
                steps = " <= ".join(f"{r} ({o})" for r, o in reversed(chain))
                lines.append(f"{target}  <= {steps} <= {' + '.join(compress_names(set(g['src'])))}")
        return sorted(lines, key=_natural)

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "architecture": self.architecture,
            "ok": self.ok,
            "rows": [dict(zip(("kind", "name", "detail"), r)) for r in self.rows()],
            "notes": list(self.notes),
            "applied": dict(self.applied),
            "loaded": len(self.loaded),
        }

    def __str__(self) -> str:
        return self.message() if not self.ok else f"checkpoint {self.source}: {self.summary()}"


def compare(expected: Dict[str, Info], got: Dict[str, Info], *, provenance=None, notes=(), applied=None, source="", architecture="") -> LoadReport:
    """Build a :class:`LoadReport` from parameter and tensor ``(shape, dtype)`` maps."""
    report = LoadReport(source=str(source), architecture=architecture, notes=list(notes), applied=dict(applied or {}))
    provenance = provenance or {}
    for name, want in expected.items():
        have = got.get(name)
        if have is None:
            report.missing[name] = want
            continue
        if tuple(have[0]) != tuple(want[0]) or is_floating(have[1]) != is_floating(want[1]):
            report.mismatched[name] = (want, have)
            continue
        report.loaded[name] = have
        if name in provenance:
            report.provenance[name] = provenance[name]
    for name, have in got.items():
        if name not in expected:
            report.unexpected[name] = have
    return report
