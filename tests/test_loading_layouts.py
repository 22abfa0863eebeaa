"""Golden tests: every HunYuan checkpoint layout loads into exactly the tensors it was made from.

Each checkpoint is written with ``mx.save_safetensors`` from known model-layout tensors,
re-laid-out by hand (``loading_fixtures``), then loaded through the installed plugin's rules.
Every parameter is compared with its source, not only the logits.
"""

import mlx.core as mx
import pytest

from loading_fixtures import (
    LEGACY, TINY, legacy_fused, max_diff, mlx_lm_registry, params, per_expert, reference_weights,
    transformers_fused, write_checkpoint,
)
from zoo_registry.loading import load_model

E = TINY["num_experts"]


@pytest.fixture(scope="module")
def ref():
    return reference_weights(TINY, seed=1)


@pytest.fixture(scope="module")
def ref_q():
    return reference_weights(TINY, seed=2, quantize=4)


QCONFIG = dict(TINY, quantization={"group_size": 32, "bits": 4})


def _load(folder, **kw):
    model, info = load_model(folder, return_info=True, **kw)
    return model, info


def test_hf_per_expert_layout(tmp_path, ref):
    folder = write_checkpoint(tmp_path / "hf", per_expert(ref, E), TINY)
    model, info = _load(folder)
    assert max_diff(model, ref) == 0.0
    assert info.report.ok and info.report.applied == {"stack-experts": 3 * TINY["num_hidden_layers"]}


def test_mlx_layout_passes_through_unchanged(tmp_path, ref):
    folder = write_checkpoint(tmp_path / "mlx", ref, TINY)
    model, info = _load(folder)
    assert max_diff(model, ref) == 0.0
    assert info.report.applied == {} and info.report.provenance == {}


def test_sharded_checkpoint_with_index(tmp_path, ref):
    folder = write_checkpoint(tmp_path / "sharded", per_expert(ref, E), TINY, shards=3)
    assert len(list(folder.glob("model-*.safetensors"))) == 3
    model, _ = _load(folder)
    assert max_diff(model, ref) == 0.0


def test_transformers_fused_experts(tmp_path, ref):
    tensors = transformers_fused(ref)
    assert tensors["model.layers.0.mlp.experts.gate_up_proj"].shape == (E, 2 * TINY["intermediate_size"], TINY["hidden_size"])
    folder = write_checkpoint(tmp_path / "tf", tensors, TINY)
    model, info = _load(folder)
    assert max_diff(model, ref) == 0.0
    assert set(info.report.applied) == {"split-transformers-gate-up", "rename-transformers-down"}


def test_legacy_fused_qkv_and_gate_and_up(tmp_path):
    ref = reference_weights(LEGACY, seed=3)
    tensors = legacy_fused(ref, LEGACY)
    assert "model.layers.0.self_attn.qkv_proj.weight" in tensors and "model.layers.1.mlp.gate_and_up_proj.weight" in tensors
    folder = write_checkpoint(tmp_path / "legacy", tensors, LEGACY)
    model, info = _load(folder)
    assert max_diff(model, ref) == 0.0
    assert set(info.report.applied) == {"split-fused-qkv", "split-gate-and-up"}


def test_legacy_fused_matches_mlx_lm_sanitize(tmp_path):
    """Oracle: mlx-lm's hand-written hunyuan sanitize splits the same fused checkpoint identically."""
    from mlx_lm.utils import load_model as mlx_load

    ref = reference_weights(LEGACY, seed=4)
    folder = write_checkpoint(tmp_path / "legacy", legacy_fused(ref, LEGACY), LEGACY)
    theirs, _ = mlx_load(folder)
    ours = load_model(folder)
    assert max_diff(ours, params(theirs)) == 0.0


def test_cla_layers_without_kv_need_no_rule(tmp_path, ref):
    assert "model.layers.1.self_attn.k_proj.weight" not in ref  # CLA: layer 1 borrows layer 0's K/V
    folder = write_checkpoint(tmp_path / "cla", per_expert(ref, E), TINY)
    _, info = _load(folder)
    assert info.report.ok and not info.report.notes


def test_tied_lm_head_and_rotary_buffers_are_dropped(tmp_path, ref):
    tensors = per_expert(ref, E)
    tensors["lm_head.weight"] = ref["model.embed_tokens.weight"]
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = mx.ones((8,))
    tensors["model.rotary_emb.inv_freq"] = mx.ones((8,))
    folder = write_checkpoint(tmp_path / "extras", tensors, TINY)
    model, info = _load(folder)
    assert max_diff(model, ref) == 0.0
    assert info.report.applied["drop-tied-lm-head"] == 1 and info.report.applied["drop-rotary-buffers"] == 2


def test_untied_lm_head_is_kept(tmp_path):
    config = dict(TINY, tie_word_embeddings=False)
    ref = reference_weights(config, seed=5)
    assert "lm_head.weight" in ref
    model, _ = _load(write_checkpoint(tmp_path / "untied", per_expert(ref, E), config))
    assert max_diff(model, ref) == 0.0


@pytest.mark.parametrize("layout", ["mlx", "per_expert", "transformers_fused"])
def test_quantized_layouts(tmp_path, ref_q, layout):
    tensors = {"mlx": lambda: dict(ref_q), "per_expert": lambda: per_expert(ref_q, E),
               "transformers_fused": lambda: transformers_fused(ref_q, quantized=True)}[layout]()
    folder = write_checkpoint(tmp_path / layout, tensors, QCONFIG)
    model, info = _load(folder)
    assert max_diff(model, ref_q) == 0.0
    assert info.quantization["bits"] == 4
    x = mx.array([[1, 2, 3, 4, 5]])
    assert model(x).shape == (1, 5, TINY["vocab_size"])


def test_quantized_legacy_fused(tmp_path):
    ref = reference_weights(LEGACY, seed=6, quantize=4)
    assert "model.layers.0.self_attn.q_proj.scales" in ref
    config = dict(LEGACY, quantization={"group_size": 32, "bits": 4})
    model, _ = _load(write_checkpoint(tmp_path / "legacy_q", legacy_fused(ref, LEGACY), config))
    assert max_diff(model, ref) == 0.0


def test_rules_target_mlx_lm_module_tree(tmp_path, ref):
    """The same rules fill mlx-lm's own hunyuan model (zoo's names are mlx-lm's names)."""
    folder = write_checkpoint(tmp_path / "hf", per_expert(ref, E), TINY)
    model = load_model(folder, registry=mlx_lm_registry())
    assert max_diff(model, ref) == 0.0


def test_stacking_experts_does_not_hold_the_checkpoint_twice(tmp_path):
    """Lazy load: nothing is read before eval; evaluating peaks well below 2x the checkpoint."""
    import gc

    config = dict(TINY, hidden_size=256, intermediate_size=256, num_experts=8, num_hidden_layers=4,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=128)
    ref = reference_weights(config, seed=8)
    size = sum(v.nbytes for v in ref.values())
    folder = write_checkpoint(tmp_path / "mem", per_expert(ref, 8), config)
    del ref
    gc.collect()
    mx.clear_cache()
    base = mx.get_active_memory()
    mx.reset_peak_memory()
    model = load_model(folder, lazy=True)
    assert mx.get_active_memory() - base < size / 10  # nothing read yet
    mx.eval(model.parameters())
    assert mx.get_peak_memory() - base < 1.5 * size
