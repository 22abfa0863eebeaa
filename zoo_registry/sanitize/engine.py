"""Apply sanitize rules to a dict of tensors (real MLX arrays or shape-only specs).

Rules run in file order; each sees what the previous ones produced. For every rule the engine
finds the source tensors its ``from`` template matches, groups them (one group per match, or per
value of the other placeholders when the rule has ``over``), calls the op and replaces the sources
by the targets. Properties the rest of zoo relies on:

- *Idempotent*: a rule whose sources are absent does nothing, so a checkpoint already in the
  model's layout passes through unchanged.
- *Lazy*: with the MLX backend every op only builds graph nodes; sources are popped from the dict
  as soon as they are consumed, so the memory-mapped checkpoint is read once, straight into the
  final parameters, when the model is evaluated. Nothing here calls ``mx.eval``.
- *Traceable*: :class:`Result` records, for each produced tensor, the rules that made it and the
  checkpoint tensors it came from (``zoo load --explain``), and notes about groups left alone.
- *Reversible*: :func:`invert` runs the inverse ops of the rules marked ``export: true`` in reverse
  order (``zoo convert --to hf``).

The tensor dict passed in is modified in place (that is what lets sources be freed early) and
returned inside the :class:`Result`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..errors import CheckpointError, ConfigError
from .ops import Split
from .rules import Rule, RuleSet, Template


@dataclass(frozen=True)
class Provenance:
    """How one tensor was produced: the rule chain and the checkpoint tensors it came from."""

    rules: Tuple[str, ...]
    ops: Tuple[str, ...]
    sources: Tuple[str, ...]


@dataclass
class Result:
    tensors: Dict[str, object]
    provenance: Dict[str, Provenance] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    applied: Dict[str, int] = field(default_factory=dict)  # rule name -> groups transformed


def apply(rules: RuleSet, tensors: Dict[str, object], config: dict, *, xp=None, registry=None) -> Result:
    """Run every applicable rule over ``tensors`` (modified in place)."""
    if xp is None:
        from .tensors import mlx_backend

        xp = mlx_backend()
    result = Result(tensors)
    for rule in rules:
        if not rule.applies(config):
            continue
        _run(rule, None, tensors, config, xp, registry, result)
    return result


def invert(rules: RuleSet, tensors: Dict[str, object], config: dict, *, xp=None, registry=None) -> Result:
    """Map tensors in the model's layout back to the layout of the ``export: true`` rules."""
    if xp is None:
        from .tensors import mlx_backend

        xp = mlx_backend()
    result = Result(tensors)
    for rule in reversed(list(rules)):
        if not rule.export or not rule.applies(config):
            continue
        op = rule.make_op(config, registry)
        inv = op.inverse()
        if inv is None:
            raise ConfigError(f"{rule.where_path}.export: op {rule.op!r} of rule {rule.name!r} has no inverse, so it cannot be exported")
        back = Rule(
            index=rule.index, name=f"{rule.name}^-1", op=getattr(inv, "name", rule.op), sources=rule.targets, targets=rule.sources,
            over=rule.over, count=rule.count, where=rule.where, suffixes=rule.suffixes, when=rule.when, file=rule.file,
        )
        if isinstance(inv, Split) and inv.sizes is None and inv.parts is None:
            inv = Split(axis=inv.axis, parts=len(back.targets))
        _run(back, inv, tensors, config, xp, registry, result)
    return result


def _run(rule: Rule, op, tensors, config, xp, registry, result: Result) -> None:
    state = {"op": op}

    def get_op():
        if state["op"] is None:
            state["op"] = rule.make_op(config, registry)
        return state["op"]

    for suffix, src, dst in rule.variants():
        if rule.match is not None:
            _run_regex(rule, suffix, dst, get_op, tensors, xp, result)
        elif rule.over is not None and rule.over in src[0].names:
            _run_gather(rule, suffix, src, dst, get_op, tensors, config, xp, result)
        else:
            _run_each(rule, suffix, src, dst, get_op, tensors, config, xp, result)


def _matches(template: Template, names) -> List[Tuple[str, Dict[str, str]]]:
    out = []
    for name in names:
        values = template.match(name)
        if values is not None:
            out.append((name, values))
    return out


def _index_order(item):
    """Sort matches numerically on integer placeholders (``layers.10`` after ``layers.9``)."""
    name, values = item
    return tuple((0, int(v), "") if v.isdigit() else (1, 0, v) for v in values.values()), name


def _run_regex(rule, suffix, dst, get_op, tensors, xp, result):
    pattern = rule.match if not suffix else f"(?:{rule.match})\\.{re.escape(suffix)}"
    rx = re.compile(pattern)
    for name in sorted(tensors):
        m = rx.fullmatch(name)
        if m is None:
            continue
        values = {k: v for k, v in m.groupdict().items() if v is not None}
        targets = [t.render(values) for t in dst]
        _transform(rule, suffix, get_op(), [name], targets, tensors, xp, result)


def _run_each(rule, suffix, src, dst, get_op, tensors, config, xp, result):
    scatter = rule.over is not None  # over appears only in the targets
    for name, values in sorted(_matches(src[0], list(tensors)), key=_index_order):
        if name not in tensors:  # consumed by an earlier group of this rule
            continue
        sources = [name] + [t.render(values) for t in src[1:]]
        absent = [s for s in sources if s not in tensors]
        if absent:
            result.notes.append(f"rule {rule.name!r}: found {name} but not {', '.join(absent)}; left as is")
            continue
        if scatter:
            _scatter(rule, suffix, get_op(), sources[0], values, dst[0], tensors, config, xp, result)
        else:
            targets = [t.render(values) for t in dst]
            _transform(rule, suffix, get_op(), sources, targets, tensors, xp, result)


def _run_gather(rule, suffix, src, dst, get_op, tensors, config, xp, result):
    over = rule.over
    groups: Dict[Tuple, Dict[int, str]] = {}
    keys: Dict[Tuple, Dict[str, str]] = {}
    for name, values in _matches(src[0], list(tensors)):
        rest = {k: v for k, v in values.items() if k != over}
        key = tuple(sorted(rest.items()))
        groups.setdefault(key, {})[int(values[over])] = name
        keys[key] = rest
    problems: Dict[str, List[str]] = {}  # what is wrong -> groups it is wrong for (compressed below)
    for key in sorted(groups, key=lambda k: tuple((0, int(v), "") if v.isdigit() else (1, 0, v) for _, v in k)):
        members = groups[key]
        expected = rule.resolve(rule.count, config, "count", keys[key]) if rule.count is not None else len(members)
        if set(members) != set(range(expected)):
            missing = sorted(set(range(expected)) - set(members))
            extra = sorted(set(members) - set(range(expected)))
            what = []
            if missing:
                what.append(f"missing {over} {_ranges(missing)}")
            if extra:
                what.append(f"unexpected {over} {_ranges(extra)}")
            example = src[0].render({**keys[key], over: "{" + over + "}"})
            problems.setdefault(f"{' and '.join(what)} (expected {expected})", []).append(example)
            continue
        sources = [members[i] for i in range(expected)]
        target = dst[0].render(keys[key])
        _transform(rule, suffix, get_op(), sources, [target], tensors, xp, result)
    from .report import compress_names

    for what, examples in problems.items():
        for name in compress_names(examples):
            result.notes.append(f"rule {rule.name!r}: {name}: {what}; left as is")


def _scatter(rule, suffix, op, source, values, dst, tensors, config, xp, result):
    x = tensors[source]
    try:
        outputs = op.forward(xp, [x], suffix=suffix)
    except (ValueError, TypeError, IndexError) as e:
        raise _op_error(rule, [source], e) from None
    if rule.count is not None:
        expected = rule.resolve(rule.count, config, "count", values)
        if len(outputs) != expected:
            raise CheckpointError(f"{rule.where_path}: rule {rule.name!r} split {source} into {len(outputs)} tensors, expected {expected}")
    targets = [dst.render({**values, rule.over: i}) for i in range(len(outputs))]
    _store(rule, op, [source], targets, outputs, tensors, result)


def _transform(rule, suffix, op, sources, targets, tensors, xp, result):
    inputs = [tensors[s] for s in sources]
    try:
        outputs = op.forward(xp, inputs, suffix=suffix)
    except (ValueError, TypeError, IndexError) as e:
        raise _op_error(rule, sources, e) from None
    del inputs
    if len(outputs) != len(targets):
        raise CheckpointError(
            f"{rule.where_path}: op {rule.op!r} of rule {rule.name!r} returned {len(outputs)} tensors for {len(targets)} targets"
        )
    _store(rule, op, sources, targets, outputs, tensors, result)


def _store(rule, op, sources, targets, outputs, tensors, result: Result):
    for t in targets:
        if t in tensors and t not in sources:
            raise CheckpointError(
                f"{rule.where_path}: rule {rule.name!r} would overwrite tensor {t}, which the checkpoint already has",
                hint="the checkpoint mixes two layouts of the same parameter; remove one of them",
            )
    chain_rules, chain_ops, origin = [], [], []
    for s in sources:
        prov = result.provenance.pop(s, None)
        if prov is not None:
            for r, o in zip(prov.rules, prov.ops):
                if r not in chain_rules:
                    chain_rules.append(r)
                    chain_ops.append(o)
            origin.extend(prov.sources)
        else:
            origin.append(s)
        del tensors[s]  # drop the reference as early as possible (lazy, memory-mapped sources)
    chain = Provenance(tuple(chain_rules) + (rule.name,), tuple(chain_ops) + (getattr(op, "name", rule.op),), tuple(origin))
    for t, x in zip(targets, outputs):
        tensors[t] = x
        result.provenance[t] = chain
    result.applied[rule.name] = result.applied.get(rule.name, 0) + 1


def _op_error(rule, sources, e) -> CheckpointError:
    return CheckpointError(
        f"{rule.where_path}: rule {rule.name!r} ({rule.op}) cannot transform {', '.join(sources[:3])}{' ...' if len(sources) > 3 else ''}: {e}",
        hint="the checkpoint does not have the layout this rule expects; check config.json against the weights",
    )


def _ranges(values: List[int]) -> str:
    from .report import format_indices

    return format_indices(values)
