"""Write the HunYuan config schemas from their one source (``common.json`` + one file per variant).

The MoE schema (``hunyuan``: HunYuan-Large, Hunyuan-A13B, legacy Hunyuan-7B) and the dense one
(``hunyuan_v1_dense``: transformers' HunYuanDenseV1) share most of their keys. Those live once in
``common.json``; ``hunyuan.json`` and ``hunyuan_v1_dense.json`` hold only what differs (their own
keys, and the shared keys a variant deliberately restricts, such as ``moe_topk``, which a dense
model fixes to 1). Edit the sources, then run ``python plugin/zoo_hunyuan/schemas/source/generate.py``;
``tests/test_hunyuan_schema_source.py`` fails while the checked-in schemas differ from the output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent
OUT = SOURCE.parent
VARIANTS = ("hunyuan", "hunyuan_v1_dense")
COMMENT = "Generated from source/common.json and source/{name}.json by source/generate.py: edit those, not this file."


def _read(name: str) -> dict:
    return json.loads((SOURCE / f"{name}.json").read_text(encoding="utf-8"))


def build(name: str) -> dict:
    """The schema of one variant: the common keys, overridden and extended by the variant's."""
    common, own = _read("common"), _read(name)
    clash = sorted(set(own) - {"$id", "title", "description", "properties", "examples"})
    if clash:
        raise ValueError(f"source/{name}.json: {clash} belong in common.json")
    properties = {**common["properties"], **own["properties"]}
    order = ["model_type"] + sorted(k for k in properties if k != "model_type")
    return {
        "$schema": common["$schema"],
        "$id": own["$id"],
        "$comment": COMMENT.format(name=name),
        "title": own["title"],
        "description": own["description"],
        "type": common["type"],
        "required": common["required"],
        "properties": {k: properties[k] for k in order},
        "patternProperties": common["patternProperties"],
        "additionalProperties": common["additionalProperties"],
        "$defs": common["$defs"],
        "examples": own["examples"],
    }


def render(name: str) -> str:
    return json.dumps(build(name), indent=2, ensure_ascii=False) + "\n"


def outputs() -> dict:
    """``{path: text}`` of every generated schema."""
    return {OUT / f"{name}.config.schema.json": render(name) for name in VARIANTS}


def main() -> int:
    for path, text in outputs().items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
