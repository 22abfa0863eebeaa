"""``zoo info NAME``: an architecture's documented config schema, or a model card."""

from ..builtin_components import DEPRECATED_NAMES
from ..errors import UnknownNameError, did_you_mean
from .output import print_json, print_table


def add_parser(sub):
    p = sub.add_parser("info", help="show an architecture's config fields or a model card")
    p.add_argument("name", help="a model_type (e.g. hunyuan), a model card name, a component or a sanitize op")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


FIELD_KEYS = ("key", "type", "default", "description", "branch")


def schema_fields(schema: dict):
    """Rows (key, type, default, description, branch) for every property, nested objects flattened.

    Keys are found through local ``$ref``s and ``allOf`` (which always apply) and inside
    ``oneOf``/``anyOf`` branches, whose rows name their branch (``anyOf 1/2``; ``None`` outside
    any branch), so a key that exists only in one alternative is still documented.
    """

    def lookup(ref):
        node = schema
        for part in ref[2:].split("/"):
            node = node.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(node, dict) else {}
        return node if isinstance(node, dict) else {}

    def resolve(node, depth=0):
        ref = node.get("$ref") if isinstance(node, dict) else None
        if isinstance(ref, str) and ref.startswith("#/") and depth < 16:
            return resolve({**lookup(ref), **{k: v for k, v in node.items() if k != "$ref"}}, depth + 1)
        return node if isinstance(node, dict) else {}

    def type_of(node):
        node = resolve(node)
        if "enum" in node:
            return " | ".join(map(repr, node["enum"]))
        if "const" in node:
            return repr(node["const"])
        t = node.get("type")
        if t:
            return " | ".join(t) if isinstance(t, list) else t
        for key in ("oneOf", "anyOf"):
            if key in node:
                return " | ".join(type_of(n) for n in node[key])
        return "any"

    rows, seen = [], set()

    def walk(node, prefix, branch, depth=0):
        node = resolve(node)
        if depth > 16:
            return
        for key, sub in (node.get("properties") or {}).items():
            sub = resolve(sub)
            if (prefix + key, branch) not in seen:
                seen.add((prefix + key, branch))
                rows.append((prefix + key, type_of(sub), sub.get("default", ""), sub.get("description", ""), branch))
            walk(sub, prefix + key + ".", branch, depth + 1)
        for sub in node.get("allOf") or []:
            walk(sub, prefix, branch, depth + 1)
        for kind in ("oneOf", "anyOf"):
            alternatives = node.get(kind) or []
            for i, sub in enumerate(alternatives, 1):
                label = f"{kind} {i}/{len(alternatives)}"
                walk(sub, prefix, f"{branch} > {label}" if branch else label, depth + 1)

    walk(schema, "", None)
    return rows


def run(args):
    registry = args.registry
    name = args.name
    catalogue = registry.cards()
    arch = None
    try:
        arch = registry.architecture(name)
    except KeyError:
        pass
    if arch is not None:
        return _show_architecture(arch, args)
    if name in catalogue:
        card = catalogue.get(name)
        info = {"kind": "card", **card.summary(), "card": card.data}
        if args.json:
            print_json(info)
        else:
            print(f"model card {card.name} ({card.origin})\n  file: {card.path}")
            for key, value in card.data.items():
                print(f"  {key}: {value}")
        return 0
    for kind, table, lookup in (("component", registry.components, registry.component), ("sanitize op", registry.ops, registry.op)):
        if name in table or (kind == "component" and name in DEPRECATED_NAMES):
            item = lookup(name)  # a pre-namespace component name warns with the new one
            if args.json:
                print_json({"kind": kind, **item.as_dict()})
            else:
                origin = item.provider if item.provider == "zoo" else f"plugin {item.provider}"
                print(f"{kind} {item.name} ({origin})\n  target: {item.target}\n  {item.description}")
            return 0
    known = set(registry.architectures) | set(registry.builtin_architectures()) | set(catalogue.cards) | set(registry.components) | set(registry.ops)
    raise UnknownNameError(f"nothing named {name!r}{did_you_mean(name, known)}", hint="`zoo list` shows what is installed")


def _show_architecture(arch, args):
    from ..schema import load_schema

    schema = load_schema(arch.config_schema) if arch.config_schema else None
    info = {"kind": "architecture", **arch.as_dict()}
    if schema is not None:
        info["fields"] = [dict(zip(FIELD_KEYS, r)) for r in schema_fields(schema)]
    if args.json:
        print_json(info)
        return 0
    print(f"architecture {arch.name} (provider: {arch.provider}{' ' + arch.provider_version if arch.provider_version else ''})")
    if arch.aliases:
        print(f"  aliases: {', '.join(arch.aliases)}")
    if arch.description:
        print(f"  {arch.description}")
    if arch.builtin:
        print("  served by mlx-lm's own module (no zoo schema: mlx-lm's ModelArgs reads the config)")
        return 0
    print(f"  model: {arch.model}\n  schema: {arch.config_schema}\n  rules: {arch.rules or '-'}\n")
    rows = schema_fields(schema)
    if any(r[4] for r in rows):  # a BRANCH column only when some key lives in a oneOf/anyOf branch
        print_table([(k, b or "", t, d, desc) for k, t, d, desc, b in rows], ("KEY", "BRANCH", "TYPE", "DEFAULT", "DESCRIPTION"))
    else:
        print_table([r[:4] for r in rows], ("KEY", "TYPE", "DEFAULT", "DESCRIPTION"))
    return 0
