"""``zoo validate FILE...``: check cards, configs and rule files; list every problem."""

import sys
from pathlib import Path

from ..errors import SchemaError, ZooError


def add_parser(sub):
    p = sub.add_parser("validate", help="validate model cards, config.json files and sanitize rule files")
    p.add_argument("files", nargs="+", metavar="FILE", help="a card (.yaml), a config (.json), a rules file (.yaml) or a checkpoint folder")
    p.set_defaults(run=run)


def validate_file(path: Path, registry) -> str:
    """Validate one file against ``registry``'s plugins; return what it was. Raises :class:`ZooError`."""
    from ..files import read_json, read_yaml

    if path.is_dir():
        path = path / "config.json"
    if path.suffix == ".json":
        from ..configs import validate_config

        arch, _ = validate_config(read_json(path, "config"), str(path), registry)
        return f"{arch.name} config"
    data = read_yaml(path)
    if isinstance(data, dict) and "rules" in data:
        from ..sanitize.rules import load_rules

        load_rules(path, registry)
        return "sanitize rules"
    from ..cards import read_card

    card = read_card(path).validate()
    registry.architecture(card.architecture)
    return "model card"


def run(args):
    failed = 0
    for name in args.files:
        path = Path(name)
        try:
            kind = validate_file(path, args.registry)
        except SchemaError as e:
            failed += 1
            for line in e.errors:
                print(line, file=sys.stderr)
            continue
        except ZooError as e:
            failed += 1
            print(str(e) if str(e).startswith(str(path)) else f"{path}: {e}", file=sys.stderr)
            if e.hint:
                print(f"  hint: {e.hint}", file=sys.stderr)
            continue
        print(f"{path}: ok ({kind})")
    return 1 if failed else 0
