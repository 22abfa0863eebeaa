"""The MoE block: routing rule, a per-token reference, the CPU grouped path, bf16 and quantized runs."""

import numpy as np
import pytest

import mlx.core as mx
import mlx.nn as nn

from zoo_registry.runtime import moe as moe_mod  # noqa: E402
from zoo_registry.runtime.moe import MoE, grouped_switch_glu, route  # noqa: E402


def randomize(module, std=0.1, seed=0):
    from mlx.utils import tree_flatten

    mx.random.seed(seed)
    module.load_weights([(k, mx.random.normal(v.shape) * std) for k, v in tree_flatten(module.parameters())])
    return module


def silu(x):
    return x / (1 + np.exp(-x))


def reference_moe(m: MoE, x: np.ndarray) -> np.ndarray:
    """Token by token, expert by expert, in float64 numpy."""
    p = {k: np.array(v, dtype=np.float64) for k, v in __import__("mlx.utils").utils.tree_flatten(m.parameters())}
    D = x.shape[-1]
    out = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(*x.shape[:-1]):
        t = x[idx].astype(np.float64)
        logits = p["gate.wg.weight"] @ t
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        top = np.argsort(-probs)[: m.top_k]
        w = probs[top] / (probs[top].sum() if m.top_k > 1 else 1.0)
        y = np.zeros(D)
        for e, we in zip(top, w):
            g = p["switch_mlp.gate_proj.weight"][e] @ t
            u = p["switch_mlp.up_proj.weight"][e] @ t
            y += we * (p["switch_mlp.down_proj.weight"][e] @ (silu(g) * u))
        if "shared_mlp.gate_proj.weight" in p:
            y += p["shared_mlp.down_proj.weight"] @ (silu(p["shared_mlp.gate_proj.weight"] @ t) * (p["shared_mlp.up_proj.weight"] @ t))
        out[idx] = y
    return out


def test_route_top1_keeps_raw_probability():
    logits = mx.array([[2.0, 1.0, 0.5, -1.0]])
    inds, w = route(logits, 1)
    probs = np.array(mx.softmax(logits, axis=-1))
    assert inds.tolist() == [[0]]
    np.testing.assert_allclose(np.array(w)[0, 0], probs[0, 0], rtol=1e-6)
    assert float(w[0, 0]) < 0.9  # not renormalised to 1


def test_route_topk_renormalises():
    logits = mx.array([[2.0, 1.0, 0.5, -1.0]])
    inds, w = route(logits, 2)
    probs = np.array(mx.softmax(logits, axis=-1))[0]
    assert sorted(inds.tolist()[0]) == [0, 1]
    np.testing.assert_allclose(np.sort(np.array(w)[0]), np.sort(probs[[0, 1]] / probs[[0, 1]].sum()), rtol=1e-6)
    np.testing.assert_allclose(np.array(w).sum(-1), 1.0, rtol=1e-6)


def test_router_runs_in_float32_for_bf16_inputs():
    m = randomize(MoE(16, 8, 4, 2))
    m.set_dtype(mx.bfloat16)
    assert m.gate(mx.ones((1, 2, 16), dtype=mx.bfloat16)).dtype == mx.float32


@pytest.mark.parametrize("top_k, shared", [(1, 24), (2, None), (3, 8)])
def test_moe_matches_per_token_reference(top_k, shared):
    m = randomize(MoE(16, 12, 5, top_k, shared_hidden_dims=shared))
    x = np.random.default_rng(1).standard_normal((2, 9, 16)).astype(np.float32)
    out = np.array(m(mx.array(x)))
    np.testing.assert_allclose(out, reference_moe(m, x), atol=1e-5)


def test_no_shared_mlp_when_not_asked():
    assert "shared_mlp" not in MoE(16, 8, 4, 2)


def test_grouped_path_equals_gather_path():
    """Long enough (>= 64 slots) that SwitchGLU sorts too; both orderings must agree."""
    m = randomize(MoE(16, 12, 6, 3, shared_hidden_dims=8))
    x = mx.random.normal((2, 20, 16))
    inds, _ = route(m.gate(x), 3)
    np.testing.assert_allclose(np.array(grouped_switch_glu(m.switch_mlp, x, inds)), np.array(m.switch_mlp(x, inds)), atol=1e-5)


def test_cpu_bf16_uses_grouped_path_and_matches_fp32():
    m = randomize(MoE(32, 16, 4, 2, shared_hidden_dims=16))
    x = mx.random.normal((2, 5, 32)) * 0.5
    ref = m(x)
    assert not moe_mod.needs_grouped_path(m.switch_mlp, x)
    m.set_dtype(mx.bfloat16)
    xb = x.astype(mx.bfloat16)
    with mx.stream(mx.cpu):
        if mx.default_device() == mx.cpu:
            assert moe_mod.needs_grouped_path(m.switch_mlp, xb)
        out = m(xb)
        mx.eval(out)
    assert out.dtype == mx.bfloat16
    np.testing.assert_allclose(np.array(out.astype(mx.float32)), np.array(ref), atol=5e-2)


def test_quantized_experts_run_in_bf16():
    m = randomize(MoE(64, 64, 4, 2, shared_hidden_dims=64))
    m.set_dtype(mx.bfloat16)
    nn.quantize(m, group_size=32, bits=8, class_predicate=lambda path, mod: hasattr(mod, "to_quantized") and not path.endswith("wg"))
    assert isinstance(m.switch_mlp.gate_proj, __import__("mlx_lm.models.switch_layers", fromlist=["x"]).QuantizedSwitchLinear)
    assert isinstance(m.gate.wg, nn.Linear)
    out = m(mx.random.normal((1, 3, 64)).astype(mx.bfloat16))
    mx.eval(out)
    assert np.isfinite(np.array(out.astype(mx.float32))).all()
