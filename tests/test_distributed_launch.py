"""Two ranks over loopback with ``mlx.launch --backend ring -n 2``: sharded == single process.

The test writes tiny HunYuan checkpoints (float32, weights from a fixed numpy seed) into a
temporary folder, launches this file as the worker on two ranks, and each rank loads every
checkpoint with :func:`zoo_registry.distributed.sharded_load_model` (lazy load, shard, evaluate)
and writes its logits and greedy tokens. The test process then loads the same checkpoints in one
process, unsharded, with :func:`zoo_registry.loading.load_model`, and compares: logits within
1e-4, identical greedy tokens, on both ranks. Cases: HunYuan-Large style (CLA + top-1 + shared
MLP) under both MoE strategies, Hunyuan-A13B style (top-2 renormalised, no CLA) under both, and a
dense ``hunyuan_v1_dense`` model, and the CLA model quantized to 4 bits on load (quantized layers
shard along whole quantization groups; its 3-group MLPs split unevenly, 2 + 1). One launch covers them all (a launch costs seconds); a bigger
checkpoint checks that each rank's peak memory during loading is about its share.

Run the worker by hand: ``mlx.launch --backend ring -n 2 --python $(which python)
tests/test_distributed_launch.py worker CKPT_ROOT OUT_DIR``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from launch_fixtures import free_port_pair, run_launch

PROMPT = [3, 17, 42, 7, 99, 5, 64, 23]
GEN_TOKENS = 8

TINY_MOE = {
    "architectures": ["HunYuanForCausalLM"],
    "model_type": "hunyuan",
    "vocab_size": 128,
    "hidden_size": 64,
    "intermediate_size": 96,
    "moe_intermediate_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_experts": 4,
    "moe_topk": 1,
    "num_shared_expert": 1,
    "use_mixed_mlp_moe": True,
    "use_qk_norm": True,
    "use_cla": True,
    "cla_share_factor": 2,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "rope_scaling": {"type": "dynamic", "alpha": 1000.0, "factor": 1.0},
    "max_position_embeddings": 256,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
}
CONFIGS = {
    "cla_top1": TINY_MOE,
    "topk": {**TINY_MOE, "use_cla": False, "moe_topk": 2, "num_experts": 4, "tie_word_embeddings": False},
    "dense": {
        "architectures": ["HunYuanDenseV1ForCausalLM"],
        "model_type": "hunyuan_v1_dense",
        "vocab_size": 128,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "use_qk_norm": True,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "rope_scaling": {"type": "dynamic", "alpha": 1000.0, "factor": 1.0},
        "max_position_embeddings": 256,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
    },
    # 96-wide MLPs are 3 quantization groups of 32: split 2 + 1 over two ranks (uneven)
    "quant": {**TINY_MOE, "intermediate_size": 96, "moe_intermediate_size": 96},
    # big enough that the weights dominate a rank's memory (about 33 MB in float32)
    "memory": {
        **TINY_MOE,
        "hidden_size": 256,
        "intermediate_size": 512,
        "moe_intermediate_size": 512,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "num_experts": 8,
        "use_cla": False,
    },
}
# (case id, checkpoint, MoE strategy)
CASES = [
    ("cla_top1-tensor", "cla_top1", "tensor"),
    ("cla_top1-expert", "cla_top1", "expert"),
    ("topk-tensor", "topk", "tensor"),
    ("topk-expert", "topk", "expert"),
    ("dense", "dense", None),
    ("q4-tensor", "quant", "tensor"),
    ("q4-expert", "quant", "expert"),
]
Q4 = {"quantize": 4, "group_size": 32}  # load options of the "quant" checkpoint (quantized on load)


def load_options(ckpt: str) -> dict:
    return dict(Q4) if ckpt == "quant" else {}


# --------------------------------------------------------------------------------------------
# the worker (runs on every rank under mlx.launch)


def greedy(model, prompt, n):
    """Greedy decoding with mlx-lm's KV caches: one prefill, then one token per step.

    (``mlx_lm.generate.generate_step`` would do the same but imports transformers, which costs
    each rank seconds.)
    """
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    logits = model(mx.array([prompt]), cache=cache)
    out = []
    for _ in range(n):
        token = mx.argmax(logits[:, -1, :], axis=-1)
        out.append(int(token.item()))
        logits = model(token[:, None], cache=cache)
    return out


def worker(ckpt_root: Path, out_dir: Path) -> None:
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from zoo_registry import distributed

    group = distributed.world()
    r = group.rank()

    # memory first: the peak of a fresh process covers only this load
    mx.reset_peak_memory()
    model = distributed.sharded_load_model(ckpt_root / "memory", group)
    held = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
    mem = {"held": held, "peak": mx.get_peak_memory(), "active": mx.get_active_memory()}
    (out_dir / f"memory.rank{r}.json").write_text(json.dumps(mem))
    del model
    mx.clear_cache()

    for case, ckpt, strategy in CASES:
        model = distributed.sharded_load_model(ckpt_root / ckpt, group, moe_strategy=strategy, **load_options(ckpt))
        logits = model(mx.array([PROMPT]))
        mx.eval(logits)  # now: collectives must run in the same order on every rank
        tokens = greedy(model, PROMPT, GEN_TOKENS)
        kinds = sorted({type(layer.mlp).__name__ for layer in model.layers})
        np.savez(out_dir / f"{case}.rank{r}.npz", logits=np.array(logits), tokens=np.array(tokens), kinds=np.array(kinds))
    if distributed.is_primary():
        print(f"primary rank {r} of {group.size()}: done", flush=True)


# --------------------------------------------------------------------------------------------
# the test process


def write_checkpoint(folder: Path, cfg: dict, seed: int) -> None:
    """Build the model, draw N(0, 1/fan_in) weights from ``seed`` (norms stay 1), save it.

    Embeddings get a small scale (0.1) so the blocks, not the embedding of the last prompt token,
    decide the next token: greedy generation then varies from step to step.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from zoo_hunyuan.model import build

    model = build(dict(cfg))
    rng = np.random.default_rng(seed)
    weights = {}
    for name, v in tree_flatten(model.parameters()):
        if v.ndim >= 2:
            scale = 0.1 if name.endswith("embed_tokens.weight") else 1 / np.sqrt(v.shape[-1])
            weights[name] = mx.array((rng.standard_normal(v.shape) * scale).astype(np.float32))
        else:
            weights[name] = v
    folder.mkdir(parents=True)
    mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata={"format": "mlx"})
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    ckpts, out_dir = root / "ckpt", root / "out"
    out_dir.mkdir()
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        write_checkpoint(ckpts / name, cfg, seed=i)
    args = [
        "--backend", "ring", "-n", "2", "--starting-port", str(free_port_pair()),
        "--python", sys.executable, str(Path(__file__).resolve()), "worker", str(ckpts), str(out_dir),
    ]
    code, out, err = run_launch(args)
    # mlx.launch exits 0 even when a rank fails, so check that every rank wrote every file
    expected = [f"{c}.rank{r}.npz" for c, _, _ in CASES for r in (0, 1)] + ["memory.rank0.json", "memory.rank1.json"]
    missing = [f for f in expected if not (out_dir / f).exists()]
    assert not missing, f"ranks did not finish (exit {code}); missing {missing}\nstdout:\n{out}\nstderr:\n{err}"
    return ckpts, out_dir, out


def reference(ckpt: Path):
    """The single-process, unsharded answer."""
    import mlx.core as mx

    from zoo_registry.loading import load_model

    model = load_model(ckpt, **load_options(ckpt.name))
    return np.array(model(mx.array([PROMPT]))), greedy(model, PROMPT, GEN_TOKENS)


@pytest.mark.parametrize("case,ckpt,strategy", CASES, ids=[c for c, _, _ in CASES])
def test_sharded_matches_single_process(launched, case, ckpt, strategy):
    ckpts, out_dir, _ = launched
    ref_logits, ref_tokens = reference(ckpts / ckpt)
    for r in (0, 1):
        got = np.load(out_dir / f"{case}.rank{r}.npz")
        delta = float(np.abs(got["logits"] - ref_logits).max())
        assert delta < 1e-4, f"rank {r}: max |logits delta| = {delta}"
        assert got["tokens"].tolist() == ref_tokens, f"rank {r}: greedy tokens differ"
        kinds = set(got["kinds"].tolist())
        if strategy == "tensor":
            assert "TensorParallelMoE" in kinds
        elif strategy == "expert":
            assert "ExpertParallelMoE" in kinds


def test_only_the_primary_prints(launched):
    _, _, out = launched
    assert out.count("done") == 1 and "primary rank 0 of 2: done" in out


def test_rank_memory_is_about_its_share(launched):
    """Peak memory while loading ≈ this rank's share, not the whole checkpoint."""
    ckpts, out_dir, _ = launched
    full = (ckpts / "memory" / "model.safetensors").stat().st_size
    cfg = CONFIGS["memory"]
    # the largest single tensor a rank materialises before slicing it: one stacked expert matrix
    largest = cfg["num_experts"] * cfg["moe_intermediate_size"] * cfg["hidden_size"] * 4
    for r in (0, 1):
        mem = json.loads((out_dir / f"memory.rank{r}.json").read_text())
        # replicated: embeddings, norms, routers; everything else is halved
        assert mem["held"] < 0.62 * full, mem
        assert mem["peak"] <= mem["held"] + largest, (mem, full)
        assert mem["peak"] < 0.62 * full, (mem, full)



if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "worker":
    worker(Path(sys.argv[2]), Path(sys.argv[3]))
