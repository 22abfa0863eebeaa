"""``zoo list [PATTERN]``: architectures (with provider and aliases) and model cards; with
``--components``, the reusable components (zoo's own ``zoo.*`` runtime and what plugins add)."""

import fnmatch

from .output import print_json, print_table, warn_failed_plugins


def add_parser(sub):
    p = sub.add_parser("list", help="list architectures and model cards")
    p.add_argument("pattern", nargs="?", help="shell-style filter on names and aliases, e.g. 'hunyuan*'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--cards", action="store_true", help="only model cards")
    p.add_argument("--architectures", action="store_true", help="only architectures")
    p.add_argument("--components", action="store_true",
                   help="only components: zoo's runtime (zoo.*) and the building blocks plugins register")
    p.set_defaults(run=run)


def _match(pattern, names):
    if not pattern:
        return True
    pat = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
    return any(fnmatch.fnmatch(n.lower(), pat.lower()) for n in names if n)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _components(args, registry) -> int:
    rows = [{"name": c.name, "provider": c.provider, "target": c.target, "description": c.description}
            for c in sorted(registry.components.values(), key=lambda c: (c.provider != "zoo", c.name))
            if _match(args.pattern, [c.name])]
    if args.json:
        print_json({"components": rows})
    else:
        print(f"Components ({len(rows)}):")
        print_table([(c["name"], c["provider"], _clip(c["description"] or "", 70)) for c in rows],
                    ("NAME", "PROVIDER", "DESCRIPTION"))
    warn_failed_plugins(registry)
    return 0


def run(args):
    registry = args.registry
    if args.components:
        return _components(args, registry)
    show_arch = args.architectures or not args.cards
    show_cards = args.cards or not args.architectures
    archs = [a for a in registry.list_architectures() if _match(args.pattern, [a["name"], *a["aliases"]])] if show_arch else []
    catalogue = registry.cards() if show_cards else None
    cards = [c.summary() for c in catalogue.unique() if _match(args.pattern, [c.name, *c.aliases])] if show_cards else []
    if args.json:
        out = {}
        if show_arch:
            out["architectures"] = archs
        if show_cards:
            out["cards"] = cards
            out["card_problems"] = catalogue.problems
        print_json(out)
        warn_failed_plugins(registry)
        return 0
    if show_arch:
        print(f"Architectures ({len(archs)}):")
        print_table(
            [(a["name"], a["provider"], ", ".join(a["aliases"]) or "-", "overrides " + ", ".join(a["shadows"]) if a["shadows"] else "")
             for a in archs],
            ("MODEL_TYPE", "PROVIDER", "ALIASES", "NOTE"),
        )
    if show_cards:
        if show_arch:
            print()
        print(f"Model cards ({len(cards)}):")
        print_table(
            [(c["name"], c["architecture"] or "?", c["origin"], _clip(c["description"] or "", 60)) for c in cards],
            ("NAME", "ARCHITECTURE", "FROM", "DESCRIPTION"),
        )
        for problem in catalogue.problems:
            print(f"zoo: warning: skipped card: {problem}")
    warn_failed_plugins(registry)
    return 0
