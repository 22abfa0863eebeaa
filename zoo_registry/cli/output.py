"""Small helpers shared by the commands: JSON output, plain tables, plugin warnings."""

from __future__ import annotations

import json
import sys


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def print_table(rows, headers) -> None:
    """Left-aligned columns; the last column is not padded."""
    table = [list(map(str, headers))] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + ("  " if len(r) > 1 else "") + r[-1])


def warn_failed_plugins(registry) -> None:
    failed = [p for p in registry.plugins if p.status == "failed"]
    if failed:
        names = ", ".join(p.name for p in failed)
        print(f"zoo: warning: {len(failed)} plugin(s) failed to load: {names} (see `zoo plugins`)", file=sys.stderr)
