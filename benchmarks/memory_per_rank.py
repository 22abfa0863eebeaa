"""Weight memory per rank for HunYuan-Large and Hunyuan-A13B sharded over 1, 2, 4 and 8 ranks.

Nothing is estimated by hand: for every (model, precision, ranks) the script builds the real zoo
model from the config file (``plugin/zoo_hunyuan/schemas/examples/hunyuan-large.json`` and
``hunyuan-a13b-instruct.json``: the released ``config.json`` values of
https://huggingface.co/tencent/Tencent-Hunyuan-Large and https://huggingface.co/tencent/Hunyuan-A13B-Instruct),
casts it to bfloat16 or quantizes it the way ``zoo load --quantize 4`` does (affine, 4 bits,
group size 64, bfloat16 scales *and* biases per group of 64, i.e. 4.5 bits per weight; the MoE
router stays bfloat16), shards it with ``model.shard(group)`` exactly as a rank would, and adds
up ``nbytes`` of the parameters that rank keeps. All of it is lazy: MLX computes shapes without
allocating the 389B parameters. ``group`` is a stand-in carrying only the size and the rank
(sharding reads nothing else).

When zoo refuses a split (``ConfigError``: a dimension that does not divide, e.g. HunYuan-Large's
4-bit ``o_proj`` over 8 ranks is 800 columns, not a multiple of the 64-wide groups), the row says
so, and the script tries 4-bit with group size 32 instead.

Usage: ``python benchmarks/memory_per_rank.py`` (prints a Markdown table; about a minute).
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten

from zoo_hunyuan.model import build
from zoo_registry.distributed import PlanGroup as Group  # a stand-in for mx.distributed.Group (sizes only)
from zoo_registry.errors import ConfigError
from zoo_registry.loading import quantize_model

EXAMPLES = Path(__file__).resolve().parents[1] / "plugin" / "zoo_hunyuan" / "schemas" / "examples"
MODELS = {"HunYuan-Large": "hunyuan-large.json", "Hunyuan-A13B": "hunyuan-a13b-instruct.json"}
RANKS = (1, 2, 4, 8)
GiB = 1024**3


def config(name: str) -> dict:
    cfg = json.loads((EXAMPLES / MODELS[name]).read_text())
    cfg.pop("$comment", None)
    return cfg


def build_lazy(cfg: dict, precision: str, group_size: int):
    model = build(dict(cfg))  # lazily initialised: shapes only, nothing is allocated
    model.set_dtype(mx.bfloat16)
    if precision == "4-bit":
        quantize_model(model, 4, group_size)
    return model


def parameter_bytes(model) -> int:
    return sum(v.nbytes for _, v in tree_flatten(model.parameters()))


def replicated_bytes(model) -> int:
    """Bytes every rank holds in full: embeddings, norms, MoE routers (and an untied head)."""
    total = 0
    for name, v in tree_flatten(model.parameters()):
        if "embed_tokens" in name or "lm_head" in name or "norm" in name or ".gate.wg." in name:
            total += v.nbytes
    return total


def per_rank(cfg: dict, precision: str, ranks: int, group_size: int = 64):
    """``(bytes on the fullest rank, replicated bytes, group size)`` or ``(None, reason, group size)``.

    Every rank is built and sharded: a split that does not divide evenly gives some ranks one
    quantization group more than others, and the table reports the rank that needs the most.
    """
    most, replicated = 0, 0
    for r in range(ranks):
        model = build_lazy(cfg, precision, group_size)
        if ranks > 1:
            try:
                model.shard(Group(ranks, r))
            except ConfigError as e:
                return None, str(e), group_size
        most, replicated = max(most, parameter_bytes(model)), replicated_bytes(model)
    return most, replicated, group_size


def main() -> None:
    print("| model | weights | ranks | fullest rank (GiB) | of which replicated (GiB) | total params | notes |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in MODELS:
        cfg = config(name)
        full = build_lazy(cfg, "bf16", 64)
        n_params = sum(v.size for _, v in tree_flatten(full.parameters()))
        for precision in ("bf16", "4-bit"):
            for n in RANKS:
                got, extra, gs = per_rank(cfg, precision, n)
                note = "group size 64" if precision == "4-bit" else ""
                if got is None and precision == "4-bit":
                    refused = extra
                    got, extra, gs = per_rank(cfg, precision, n, group_size=32)
                    note = f"group size 64 refused ({refused}); group size 32"
                    if got is None:
                        note = f"group size 64 and 32 refused ({extra})"
                if got is None:
                    print(f"| {name} | {precision} | {n} | — | — | {n_params / 1e9:.1f}B | {note or extra} |")
                    continue
                print(f"| {name} | {precision} | {n} | {got / GiB:.2f} | {extra / GiB:.2f} | {n_params / 1e9:.1f}B | {note} |")


if __name__ == "__main__":
    main()
