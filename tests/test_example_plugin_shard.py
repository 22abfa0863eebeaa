"""zoo-llama's ``Model.shard(group)`` (the guide's whole-model example) on two real ranks.

``mlx.launch --backend ring -n 2`` runs this file as the worker: each rank builds zoo-llama's
``Model``, loads the weights of mlx-lm's own ``llama`` model, calls ``model.shard(group)`` and
writes its logits (whole prompt, then token by token through mlx-lm's caches) and its share of the
heads. The test compares them with mlx-lm's unsharded ``llama`` in this process, tied and untied.

Run the worker by hand: ``mlx.launch --backend ring -n 2 --python $(which python)
tests/test_example_plugin_shard.py worker DIR``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from launch_fixtures import ring_args, run_launch

CONFIG = {"vocab_size": 96, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 128}
CASES = {"untied": False, "tied": True}
PROMPT = [[5, 17, 42, 7, 90, 3, 64, 23, 11, 2]]
PREFILL = 6


def reference(tied: bool, seed: int):
    """mlx-lm's ``llama`` with seeded random weights, and the weights."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    ref = llama.Model(llama.ModelArgs.from_dict(dict(CONFIG, model_type="llama", tie_word_embeddings=tied)))
    mx.random.seed(seed)
    weights = {k: (1.0 if "norm" in k else 0.0) + 0.1 * mx.random.normal(v.shape) for k, v in tree_flatten(ref.parameters())}
    ref.load_weights(list(weights.items()))
    return ref, weights


def logits(model):
    """Prompt logits at once, and prefill + one token at a time through mlx-lm's caches."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    x = mx.array(PROMPT)
    cache = make_prompt_cache(model)
    steps = [model(x[:, :PREFILL], cache=cache)] + [model(x[:, t:t + 1], cache=cache) for t in range(PREFILL, x.shape[1])]
    return np.array(model(x)), np.array(mx.concatenate(steps, axis=1))


def worker(out_dir: Path) -> None:
    import mlx.core as mx

    from zoo_llama.model import Model

    group = mx.distributed.init()
    for i, (case, tied) in enumerate(CASES.items()):
        _, weights = reference(tied, seed=i)
        model = Model(dict(CONFIG, model_type="zoo_llama", tie_word_embeddings=tied))
        model.load_weights(list(weights.items()), strict=True)
        model.shard(group)
        full, stepped = logits(model)
        attn = model.layers[0].self_attn
        np.savez(out_dir / f"{case}.rank{group.rank()}.npz", full=full, stepped=stepped,
                 heads=np.array([group.size(), attn.n_heads, attn.n_kv_heads]))


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("zoo_llama_shard")
    code, out, err = run_launch([*ring_args(2), "--python", sys.executable, str(Path(__file__).resolve()), "worker", str(out_dir)])
    missing = [f"{c}.rank{r}.npz" for c in CASES for r in (0, 1) if not (out_dir / f"{c}.rank{r}.npz").exists()]
    assert not missing, f"ranks did not finish (exit {code}); missing {missing}\nstdout:\n{out}\nstderr:\n{err}"
    return out_dir


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_ranks_match_mlx_lm_unsharded(launched, case):
    import mlx.core as mx

    ref, _ = reference(CASES[case], seed=list(CASES).index(case))
    expected = np.array(ref(mx.array(PROMPT)))
    for r in (0, 1):
        got = np.load(launched / f"{case}.rank{r}.npz")
        assert got["heads"].tolist() == [2, CONFIG["num_attention_heads"] // 2, CONFIG["num_key_value_heads"] // 2]
        for kind in ("full", "stepped"):
            delta = float(np.abs(got[kind] - expected).max())
            assert delta <= 1e-4, f"rank {r} ({kind}): max |logits - mlx-lm| = {delta}"


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    worker(Path(sys.argv[2]))
