"""``zoo info NAME``: an architecture's documented config schema, or a model card."""

from ..errors import UnknownNameError, did_you_mean
from .output import print_json, print_table


def add_parser(sub):
    p = sub.add_parser("info", help="show an architecture's config fields or a model card")
    p.add_argument("name", help="a model_type (e.g. hunyuan), a model card name, a component or a sanitize op")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def schema_fields(schema: dict):
    """Rows (key, type, default, description) for every property, nested objects flattened."""
    defs = schema.get("$defs", {})

    def resolve(node):
        while isinstance(node, dict) and "$ref" in node and node["$ref"].startswith("#/$defs/"):
            node = {**defs.get(node["$ref"].split("/")[-1], {}), **{k: v for k, v in node.items() if k != "$ref"}}
        return node

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

    rows = []

    def walk(props, prefix):
        for key, node in props.items():
            node = resolve(node)
            rows.append((prefix + key, type_of(node), node.get("default", ""), node.get("description", "")))
            if isinstance(node.get("properties"), dict):
                walk(node["properties"], prefix + key + ".")

    walk(schema.get("properties", {}), "")
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
    for kind, table in (("component", registry.components), ("sanitize op", registry.ops)):
        if name in table:
            item = table[name]
            if args.json:
                print_json({"kind": kind, **item.as_dict()})
            else:
                print(f"{kind} {item.name} (plugin {item.provider})\n  target: {item.target}\n  {item.description}")
            return 0
    known = set(registry.architectures) | set(registry.builtin_architectures()) | set(catalogue.cards) | set(registry.components) | set(registry.ops)
    raise UnknownNameError(f"nothing named {name!r}{did_you_mean(name, known)}", hint="`zoo list` shows what is installed")


def _show_architecture(arch, args):
    from ..schema import load_schema

    schema = load_schema(arch.config_schema) if arch.config_schema else None
    info = {"kind": "architecture", **arch.as_dict()}
    if schema is not None:
        info["fields"] = [dict(zip(("key", "type", "default", "description"), r)) for r in schema_fields(schema)]
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
    print_table(schema_fields(schema), ("KEY", "TYPE", "DEFAULT", "DESCRIPTION"))
    return 0
