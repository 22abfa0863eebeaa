"""Parse and validate sanitize rule files.

Structure is checked by ``schemas/sanitize-rules.schema.json``; this module checks what a schema
cannot: placeholders used consistently between ``from`` and ``to``, the op's arity, regexes that
compile, op names that exist (built-in or registered by a plugin). Every problem is reported as
``FILE::$.rules[i].key: message``. No MLX is imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..errors import ConfigError, SchemaError, UnknownNameError, did_you_mean
from ..files import read_yaml
from .ops import BUILTIN

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
CONFIG_REF = re.compile(r"^config\.([A-Za-z_][A-Za-z0-9_]*)$")
_INT = r"\d+"

# (min inputs, max inputs, min outputs, max outputs) for built-in ops; None = unbounded
_ARITY = {
    "rename": (1, 1, 1, 1),
    "drop": (1, 1, 0, 0),
    "split": (1, 1, 2, None),
    "concatenate": (2, None, 1, 1),
    "stack": (1, 1, 1, 1),
    "unstack": (1, 1, 1, 1),
    "transpose": (1, 1, 1, 1),
    "reshape": (1, 1, 1, 1),
}
_OP_KEYS = {"split": ("axis", "sizes"), "concatenate": ("axis",), "stack": ("axis",), "unstack": ("axis",), "transpose": ("axes",), "reshape": ("shape",)}


def placeholders(template: str) -> List[str]:
    return PLACEHOLDER.findall(template)


@dataclass
class Template:
    """A name template compiled to a regex (``{x}`` → a named group)."""

    text: str
    where: Dict[str, List[str]] = field(default_factory=dict)

    def __post_init__(self):
        parts, pos = [], 0
        seen = set()
        for m in PLACEHOLDER.finditer(self.text):
            parts.append(re.escape(self.text[pos:m.start()]))
            name = m.group(1)
            if name in seen:
                parts.append(f"(?P={name})")
            else:
                seen.add(name)
                values = self.where.get(name)
                alt = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)) if values else _INT
                parts.append(f"(?P<{name}>{alt})")
            pos = m.end()
        parts.append(re.escape(self.text[pos:]))
        self.regex = re.compile("".join(parts))
        self.names = list(dict.fromkeys(placeholders(self.text)))
        self.literal = not self.names

    def match(self, name: str) -> Optional[Dict[str, str]]:
        m = self.regex.fullmatch(name)
        return m.groupdict() if m else None

    def render(self, values: Dict[str, Any]) -> str:
        return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), self.text)


@dataclass
class Rule:
    """One validated rule. ``sources``/``targets`` are templates without the suffix."""

    index: int
    name: str
    op: str
    sources: List[str]
    targets: List[str]
    match: Optional[str] = None
    over: Optional[str] = None
    count: Any = None
    where: Dict[str, List[str]] = field(default_factory=dict)
    suffixes: List[Optional[str]] = field(default_factory=lambda: [None])
    when: Dict[str, Any] = field(default_factory=dict)
    op_params: Dict[str, Any] = field(default_factory=dict)
    export: bool = False
    description: str = ""
    file: str = ""
    plugin_op: Any = field(default=None, repr=False, compare=False)  # the registry's entry for a plugin op, bound when parsed

    @property
    def where_path(self) -> str:
        return f"{self.file}::$.rules[{self.index}]"

    def applies(self, config: dict) -> bool:
        """True if every ``when`` condition holds for ``config``."""
        for key, expected in self.when.items():
            if key not in config:
                return False
            accepted = expected if isinstance(expected, list) else [expected]
            if config[key] not in accepted:
                return False
        return True

    def variants(self) -> List[Tuple[Optional[str], List[Template], List[Template]]]:
        """``(suffix, source templates, target templates)`` per suffix."""
        out = []
        for suffix in self.suffixes:
            add = (lambda t: f"{t}.{suffix}") if suffix else (lambda t: t)
            src = [Template(add(t), self.where) for t in self.sources]
            dst = [Template(add(t), self.where) for t in self.targets]
            out.append((suffix, src, dst))
        return out

    def resolve(self, value, config: dict, key: str, values: Optional[Dict[str, str]] = None):
        """An integer, or ``config.KEY`` read from ``config`` (lists: element-wise).

        A config key holding a per-layer list (``num_experts: [64, 64, ...]`` after
        normalisation) is indexed with the rule's ``{layer}`` placeholder value; a list whose
        entries are all equal needs no index.
        """
        if isinstance(value, list):
            return [self.resolve(v, config, key, values) for v in value]
        if isinstance(value, str):
            m = CONFIG_REF.match(value)
            if m:
                ckey = m.group(1)
                if ckey not in config:
                    raise ConfigError(
                        f"{self.where_path}.{key}: rule {self.name!r} reads config key {ckey!r}, which the model config does not have",
                        hint="add the key to config.json or to the card's config_overrides",
                    )
                got = config[ckey]
                if isinstance(got, list) and got:
                    if values and "layer" in values and str(values["layer"]).isdigit() and int(values["layer"]) < len(got):
                        got = got[int(values["layer"])]
                    elif all(g == got[0] for g in got):
                        got = got[0]
                if isinstance(got, bool) or not isinstance(got, int):
                    raise ConfigError(f"{self.where_path}.{key}: config key {ckey!r} must be an integer for rule {self.name!r}, got {got!r}")
                return got
        return value

    def make_op(self, config: dict, registry=None):
        """Instantiate the op with config references resolved (a plugin op is the one bound when the
        rule was parsed; ``registry`` is only asked for a rule built without one)."""
        cls = self.plugin_op.load() if self.plugin_op is not None else op_class(self.op, registry, self.where_path + ".op")
        kwargs = {k: self.resolve(v, config, k) for k, v in self.op_params.items()}
        if self.op == "split" and "sizes" not in kwargs:
            kwargs["parts"] = len(self.targets)
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{self.where_path}: op {self.op!r} of rule {self.name!r} rejects its parameters: {e}") from None


@dataclass
class RuleSet:
    """The parsed rules of one file (or an empty set for architectures without rules)."""

    file: str
    rules: List[Rule]
    description: str = ""

    def __iter__(self):
        return iter(self.rules)

    def __len__(self):
        return len(self.rules)


def op_class(name: str, registry=None, where: str = ""):
    """The op class for a built-in op name, or one ``registry`` has from a plugin."""
    if name in BUILTIN:
        return BUILTIN[name]
    if registry is None:
        raise UnknownNameError(f"{where}: unknown sanitize op {name!r} (no registry given: only the built-in ops are known)",
                               hint=f"known ops: {', '.join(sorted(BUILTIN))}")
    try:
        named = registry.op(name)
    except KeyError as e:
        known = sorted(set(BUILTIN) | set(registry.ops))
        raise UnknownNameError(f"{where}: {e}", hint=f"known ops: {', '.join(known)}") from None
    return named.load()


def load_rules(path, registry=None) -> RuleSet:
    """Read, schema-validate and check a rule file; raise :class:`ConfigError`/`SchemaError`.

    ``registry`` knows the plugins' ops (each rule binds its op's entry); without one only the
    built-in ops are accepted."""
    data = read_yaml(Path(path), "sanitize rules")
    return parse_rules(data, str(path), registry)


def parse_rules(data, file: str = "<rules>", registry=None) -> RuleSet:
    from ..schema import framework_schema_path, load_schema, validate

    validate(data, load_schema(str(framework_schema_path("sanitize-rules"))), file, "sanitize rules")
    defaults = data.get("defaults") or {}
    problems: List[str] = []
    rules: List[Rule] = []
    names = set()
    for i, raw in enumerate(data["rules"]):
        where = f"{file}::$.rules[{i}]"
        merged = {**defaults, **raw}
        rule = _build(i, merged, file, problems, where, registry)
        if rule is None:
            continue
        if rule.name in names:
            problems.append(f"{where}.name: rule name {rule.name!r} is used twice")
        names.add(rule.name)
        rules.append(rule)
    if problems:
        head = problems[0] if len(problems) == 1 else f"{file}: {len(problems)} problems in sanitize rules:\n  " + "\n  ".join(problems)
        raise SchemaError(head, errors=problems)
    return RuleSet(file, rules, data.get("description", ""))


def _as_list(value) -> List[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _build(i, raw, file, problems, where, registry) -> Optional[Rule]:
    op = raw["op"]
    name = raw.get("name") or f"{op}#{i}"
    sources, targets = _as_list(raw.get("from")), _as_list(raw.get("to"))
    match = raw.get("match")
    over = raw.get("over")
    where_values = raw.get("where") or {}
    start = len(problems)

    plugin_op = None
    if op not in BUILTIN:
        plugin_ops = registry.ops if registry is not None else {}
        if op not in plugin_ops:  # checked by name only: validating must not import the op's module (MLX)
            known = sorted(set(BUILTIN) | set(plugin_ops))
            unplugged = "" if registry is not None else "; no registry was given, so plugins' ops are not known"
            problems.append(f"{where}.op: unknown sanitize op {op!r}{did_you_mean(op, known)} (known: {', '.join(known)}{unplugged})")
            return None
        plugin_op = plugin_ops[op]

    if match is not None:
        if op not in ("rename", "drop"):
            problems.append(f"{where}.match: only rename and drop accept a regex `match`; use `from` templates for {op!r}")
        if sources:
            problems.append(f"{where}: give either `from` or `match`, not both")
        try:
            rx = re.compile(match)
        except re.error as e:
            problems.append(f"{where}.match: invalid regular expression: {e}")
            return None
        groups = set(rx.groupindex)
        for t in targets:
            for p in placeholders(t):
                if p not in groups:
                    problems.append(f"{where}.to: placeholder {{{p}}} is not a named group of `match` (groups: {sorted(groups) or 'none'})")
        if raw.get("export"):
            problems.append(f"{where}.export: a regex rule cannot be inverted; use `from` templates to export it")
    elif not sources:
        problems.append(f"{where}.from: required key is missing (or give `match` for rename/drop)")

    if op in _ARITY:
        lo_in, hi_in, lo_out, hi_out = _ARITY[op]
        n_in = 1 if match is not None else len(sources)
        if sources and (n_in < lo_in or (hi_in is not None and n_in > hi_in)):
            problems.append(f"{where}.from: op {op!r} takes {_count(lo_in, hi_in)} source template(s), got {n_in}")
        if len(targets) < lo_out or (hi_out is not None and len(targets) > hi_out):
            key = "to"
            problems.append(f"{where}.{key}: op {op!r} produces {_count(lo_out, hi_out)} target(s), got {len(targets)}")
        allowed = set(_OP_KEYS.get(op, ()))
        for key in ("axis", "sizes", "axes", "shape"):
            if key in raw and key not in allowed:
                problems.append(f"{where}.{key}: op {op!r} does not take {key!r}")
        if "params" in raw:
            problems.append(f"{where}.params: `params` is for plugin ops; built-in op {op!r} takes {', '.join(sorted(allowed)) or 'no parameters'} directly")
        if op == "transpose" and "axes" not in raw:
            problems.append(f"{where}.axes: required key is missing for transpose")
        if op == "reshape" and "shape" not in raw:
            problems.append(f"{where}.shape: required key is missing for reshape")
        if op == "split" and "sizes" in raw and len(raw["sizes"]) != len(targets):
            problems.append(f"{where}.sizes: {len(raw['sizes'])} sizes for {len(targets)} targets")
        if op in ("stack", "unstack") and not over:
            problems.append(f"{where}.over: required key is missing for {op} (the placeholder that indexes the tensors)")
    else:
        for key in ("axis", "sizes", "axes", "shape"):
            if key in raw:
                problems.append(f"{where}.{key}: plugin op {op!r} takes its parameters under `params`")

    # placeholders: every target placeholder must come from the sources (except a scatter's `over`)
    if sources:
        src_sets = [set(placeholders(t)) for t in sources]
        if any(s != src_sets[0] for s in src_sets):
            problems.append(f"{where}.from: all source templates must use the same placeholders, got {[sorted(s) for s in src_sets]}")
        src = src_sets[0]
        dst_sets = [set(placeholders(t)) for t in targets]
        dst = set().union(*dst_sets) if dst_sets else set()
        if over:
            in_src, in_dst = over in src, over in dst
            if in_src == in_dst:
                problems.append(f"{where}.over: placeholder {{{over}}} must appear in `from` (to gather) or in `to` (to scatter), not {'both' if in_src else 'neither'}")
            extra = dst - src - {over}
        else:
            extra = dst - src
        if extra:
            problems.append(f"{where}.to: placeholder(s) {', '.join('{' + p + '}' for p in sorted(extra))} do not appear in `from`")
        if not over and targets and op not in ("drop",):
            lost = src - dst
            if lost:
                problems.append(
                    f"{where}.to: placeholder(s) {', '.join('{' + p + '}' for p in sorted(lost))} of `from` are missing from `to`, "
                    "so different tensors would get the same name"
                )
        for key in where_values:
            if key not in src | dst:
                problems.append(f"{where}.where.{key}: placeholder {{{key}}} is not used by the rule")
        if over and over in where_values:
            problems.append(f"{where}.where.{over}: the `over` placeholder indexes tensors and must be an integer")
    elif over:
        problems.append(f"{where}.over: `over` needs `from` templates")

    if len(problems) > start:
        return None
    op_params = {k: raw[k] for k in _OP_KEYS.get(op, ()) if k in raw} if op in BUILTIN else dict(raw.get("params") or {})
    suffixes = raw.get("suffixes") or [None]
    return Rule(
        index=i,
        name=name,
        op=op,
        sources=sources,
        targets=targets,
        match=match,
        over=over,
        count=raw.get("count"),
        where={k: list(v) for k, v in where_values.items()},
        suffixes=list(suffixes),
        when=dict(raw.get("when") or {}),
        op_params=op_params,
        export=bool(raw.get("export", False)),
        description=raw.get("description", ""),
        file=file,
        plugin_op=plugin_op,
    )


def _count(lo, hi) -> str:
    if hi is None:
        return f"{lo} or more"
    return str(lo) if lo == hi else f"{lo} to {hi}"


EMPTY = RuleSet("<no rules>", [])
