"""Built-in and HunYuan sanitize ops: forward on MLX arrays, inverses, and shape-only planning."""

import mlx.core as mx
import numpy as np
import pytest

from zoo_registry.sanitize import Op
from zoo_registry.sanitize.ops import BUILTIN, Concatenate, Rename, Split, Stack, Transpose, Unstack, Reshape, Drop
from zoo_registry.sanitize.tensors import SHAPES, Spec, describe, mlx_backend
from zoo_hunyuan.ops import MergeGroupedQKV, SplitGroupedQKV

xp = mlx_backend()


def arange(*shape):
    return mx.arange(int(np.prod(shape)), dtype=mx.float32).reshape(shape)


def same(a, b):
    return a.shape == b.shape and bool(mx.array_equal(a, b))


def spec(x):
    return Spec(*describe(x))


def check_plan_matches(op, inputs):
    """The shape backend predicts exactly the shapes MLX produces."""
    real = op.forward(xp, inputs)
    planned = op.forward(SHAPES, [spec(x) for x in inputs])
    assert [spec(r) for r in real] == planned
    return real


@pytest.mark.parametrize("op,inputs", [
    (Split(axis=0, parts=2), [arange(6, 3)]),
    (Split(axis=1, sizes=[1, 2]), [arange(2, 3)]),
    (Concatenate(axis=1), [arange(2, 3), arange(2, 5)]),
    (Stack(), [arange(2, 3)] * 4),
    (Unstack(), [arange(4, 2, 3)]),
    (Transpose(axes=[1, 0]), [arange(2, 3)]),
    (Reshape(shape=[3, -1]), [arange(2, 3)]),
    (SplitGroupedQKV(num_heads=4, num_kv_heads=2), [arange((4 + 2 * 2) * 2, 5)]),
    (MergeGroupedQKV(num_heads=4, num_kv_heads=2), [arange(8, 5), arange(4, 5), arange(4, 5)]),
])
def test_inverse_round_trip_and_plan(op, inputs):
    out = check_plan_matches(op, inputs)
    inv = op.inverse()
    if inv is None:
        assert isinstance(op, Reshape)
        return
    if isinstance(inv, Split) and inv.parts is None and inv.sizes is None:
        inv = Split(axis=inv.axis, sizes=[x.shape[inv.axis] for x in inputs])
    back = check_plan_matches(inv, out)
    assert len(back) == len(inputs) and all(same(a, b) for a, b in zip(back, inputs))


@pytest.mark.parametrize("seed", range(10))
def test_split_concatenate_any_sizes(seed):
    rng = np.random.default_rng(seed)
    sizes, width = [int(s) for s in rng.integers(1, 6, size=rng.integers(2, 5))], int(rng.integers(1, 4))
    x = arange(sum(sizes), width)
    parts = Split(axis=0, sizes=sizes).forward(xp, [x])
    assert [p.shape[0] for p in parts] == sizes
    assert same(Concatenate(axis=0).forward(xp, parts)[0], x)


def test_grouped_qkv_row_order():
    """Rows per KV head g: G query heads, then key head g, then value head g."""
    nh, nkv, hd, H = 6, 2, 3, 4
    G = nh // nkv
    q, k, v = arange(nh * hd, H), arange(nkv * hd, H) + 1000, arange(nkv * hd, H) + 2000
    blocks = []
    for g in range(nkv):
        blocks += [q[g * G * hd:(g + 1) * G * hd], k[g * hd:(g + 1) * hd], v[g * hd:(g + 1) * hd]]
    fused = mx.concatenate(blocks)
    out = SplitGroupedQKV(num_heads=nh, num_kv_heads=nkv).forward(xp, [fused])
    assert all(same(a, b) for a, b in zip(out, (q, k, v)))
    bias = SplitGroupedQKV(num_heads=nh, num_kv_heads=nkv).forward(xp, [fused[:, 0]])
    assert all(same(a, b[:, 0]) for a, b in zip(bias, (q, k, v)))


def test_grouped_qkv_matches_mlx_lm_sanitize():
    """Oracle: mlx-lm's hunyuan sanitize splits a fused qkv_proj the same way."""
    from mlx_lm.models import hunyuan

    args = hunyuan.ModelArgs.from_dict(dict(
        model_type="hunyuan", vocab_size=8, hidden_size=16, num_hidden_layers=1, intermediate_size=8,
        num_attention_heads=4, num_key_value_heads=2, attention_bias=False, moe_topk=1, num_experts=1,
        num_shared_expert=1, use_mixed_mlp_moe=False, use_qk_norm=True, rms_norm_eps=1e-5, rope_theta=1e4,
        use_cla=False, cla_share_factor=2, rope_scaling={"alpha": 1.0, "factor": 1.0, "type": "dynamic"},
    ))
    fused = mx.random.normal((4 * 4 + 2 * 2 * 4, 16))
    theirs = hunyuan.Model(args).sanitize({
        "model.layers.0.self_attn.qkv_proj.weight": fused,
        "model.layers.0.mlp.gate_and_up_proj.weight": mx.zeros((16, 16)),
    })
    ours = SplitGroupedQKV(num_heads=4, num_kv_heads=2).forward(xp, [fused])
    assert len(ours) == 3  # zip() below would stop early on fewer
    for name, t in zip(("q_proj", "k_proj", "v_proj"), ours):
        assert same(t, theirs[f"model.layers.0.self_attn.{name}.weight"])


def test_bad_shapes_raise_value_error():
    with pytest.raises(ValueError, match="not a multiple"):
        SplitGroupedQKV(num_heads=4, num_kv_heads=2).forward(xp, [arange(7, 2)])
    with pytest.raises(ValueError, match="equal parts"):
        Split(axis=0, parts=2).forward(SHAPES, [Spec((5, 2), "float32")])
    with pytest.raises(ValueError, match="add up"):
        Split(axis=0, sizes=[1, 2]).forward(xp, [arange(4, 2)])
    with pytest.raises(ValueError, match="not a multiple"):
        SplitGroupedQKV(num_heads=5, num_kv_heads=2)
    with pytest.raises(ValueError, match="quantized"):
        Transpose(axes=[1, 0]).forward(xp, [arange(2, 2)], suffix="scales")
    with pytest.raises(ValueError, match="no parameter"):
        Op(foo=1)


def test_stack_is_lazy_and_drop_has_no_inverse():
    parts = [arange(2, 2) + i for i in range(3)]
    (stacked,) = Stack().forward(xp, parts)
    assert stacked.shape == (3, 2, 2)
    assert Drop().inverse() is None and Drop().forward(xp, parts[:1]) == []
    assert isinstance(Rename().inverse(), Rename)
    assert set(BUILTIN) == {"rename", "drop", "split", "concatenate", "stack", "unstack", "transpose", "reshape",
                            "dequantize_fp8", "gptq_to_mlx", "gptq_v2_to_mlx", "dequantize_gptq", "dequantize_gptq_v2", "awq_to_mlx"}
