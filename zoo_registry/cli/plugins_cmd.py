"""``zoo plugins``: every ``zoo`` entry point with its version, hooks, status and error."""

from .output import print_json, print_table


def add_parser(sub):
    p = sub.add_parser("plugins", help="list installed plugins and their status")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def run(args):
    registry = args.registry
    rows = [p.as_dict() for p in registry.plugins]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no zoo plugins installed (entry-point group 'zoo')")
        return 0
    print_table(
        [(r["name"], r["version"] or "?", r["status"], ",".join(h.replace("register_", "") for h in r["hooks"]) or "-", r["error"] or "")
         for r in rows],
        ("NAME", "VERSION", "STATUS", "HOOKS", "ERROR"),
    )
    return 0
