"""Entry point of the ``zoo`` console script.

Exit codes: 0 success; 1 a user-facing error (bad input, failed validation, missing model); 2 usage
error (unknown command or option). A :class:`ZooError` prints one message (and a hint) without a
traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import ZooError

# Command modules are imported to build the parser; they keep heavy imports (MLX) inside run().
COMMANDS = ("list", "plugins", "info", "validate", "load", "generate", "convert")


def build_parser():
    parser = argparse.ArgumentParser(prog="zoo", description="A plugin-based model zoo for MLX.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__package__}.{name}_cmd")
        except ModuleNotFoundError as e:
            if e.name == f"{__package__}.{name}_cmd":
                continue  # command not built yet
            raise
        module.add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug
    try:
        return int(args.run(args) or 0)
    except ZooError as e:
        if debug:
            raise
        print(f"zoo: error: {e}", file=sys.stderr)
        if getattr(e, "hint", None):
            print(f"hint: {e.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
