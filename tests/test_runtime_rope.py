"""RoPE variants against the textbook formula (NeoX rotate_half layout), written out in numpy."""

import numpy as np
import pytest

import mlx.core as mx

from zoo_registry.errors import ConfigError, ZooError  # noqa: E402
from zoo_registry.runtime.rope import DynamicNTKRoPE, LinearRoPE, NTKAlphaRoPE, RoPE, make_rope  # noqa: E402


def reference_rope(x: np.ndarray, positions: np.ndarray, base: float) -> np.ndarray:
    """x[B, h, L, d] rotated by angle pos * base**(-2i/d), pairs (i, i + d/2)."""
    d = x.shape[-1]
    inv_freq = 1.0 / base ** (np.arange(0, d, 2, dtype=np.float64) / d)
    ang = positions[:, None].astype(np.float64) * inv_freq[None]  # [L, d/2]
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    rot = np.concatenate([-x2, x1], -1)
    return x * cos + rot * sin


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((2, 3, 7, 16)).astype(np.float32)


def check(rope, x, base, offset=0, pos_scale=1.0):
    out = np.array(rope(mx.array(x), offset=offset))
    ref = reference_rope(x, (np.arange(x.shape[2]) + offset) * pos_scale, base)
    np.testing.assert_allclose(out, ref, atol=2e-5)


def test_plain_rope_matches_formula(x):
    check(RoPE(16, base=10000.0), x, 10000.0, offset=5)


def test_ntk_alpha_stretches_the_base(x):
    d, theta, alpha = 16, 10000.0, 1000.0
    rope = NTKAlphaRoPE(d, theta, alpha)
    expected = theta * alpha ** (d / (d - 2))
    assert rope.base == pytest.approx(expected)
    check(rope, x, expected, offset=11)


def test_ntk_alpha_reference_values():
    """Tencent's NTK-alpha base, rope_theta * alpha ** (d / (d - 2)) (modeling_hunyuan.py), worked out by hand:
    10000 * 1000 ** (128 / 126) = 11,158,839.93 (A13B/7B, head_dim 128); 10000 * 1000 ** (80 / 78) = 11,937,766.42 (Large)."""
    assert NTKAlphaRoPE(128, 10000.0, 1000.0).base == pytest.approx(11158839.93, abs=0.01)
    assert NTKAlphaRoPE(80, 10000.0, 1000.0).base == pytest.approx(11937766.42, abs=0.01)


def test_linear_rope_divides_positions(x):
    check(LinearRoPE(16, 10000.0, factor=4.0), x, 10000.0, offset=3, pos_scale=0.25)


def test_dynamic_ntk_is_plain_within_trained_length(x):
    check(DynamicNTKRoPE(16, 10000.0, factor=2.0, max_position_embeddings=64), x, 10000.0, offset=4)


def test_dynamic_ntk_grows_base_past_trained_length(x):
    rope = DynamicNTKRoPE(16, 10000.0, factor=2.0, max_position_embeddings=8)
    n = 7 + 20  # offset + L
    base = 10000.0 * ((2.0 * n / 8) - 1.0) ** (16 / 14)
    assert rope.base_for(n) == pytest.approx(base)
    check(rope, x, base, offset=20)


@pytest.mark.parametrize(
    "scaling, cls",
    [
        (None, RoPE),
        ({"type": "default"}, RoPE),
        ({"type": "linear", "factor": 2.0}, LinearRoPE),
        ({"type": "dynamic", "alpha": 1000.0, "factor": 1.0}, NTKAlphaRoPE),
        ({"rope_type": "ntk_alpha", "alpha": 10.0}, NTKAlphaRoPE),
        ({"type": "dynamic", "alpha": None, "factor": 2.0}, DynamicNTKRoPE),
        ({"type": "dynamic", "alpha": 0, "factor": 2.0}, DynamicNTKRoPE),
    ],
)
def test_make_rope_dispatches_on_type(scaling, cls):
    rope = make_rope(16, 10000.0, scaling, max_position_embeddings=64)
    assert type(rope) is cls


def test_make_rope_names_unsupported_type():
    with pytest.raises(ZooError, match=r"\$\.rope_scaling\.type: unsupported RoPE type 'yarn'"):
        make_rope(16, 10000.0, {"type": "yarn", "factor": 4.0})


def test_ntk_alpha_rejects_non_positive_alpha():
    with pytest.raises(ConfigError, match=r"alpha > 0"):
        NTKAlphaRoPE(16, 10000.0, -1.0)


def test_llama3_rope_matches_mlx_lm():
    """Same frequencies as mlx-lm's Llama3RoPE (the oracle), through make_rope's dispatch."""
    from mlx_lm.models.rope_utils import initialize_rope

    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64}
    ours = make_rope(32, 500000.0, scaling, max_position_embeddings=512)
    ref = initialize_rope(32, 500000.0, False, scaling, 512)
    x = mx.random.normal((2, 3, 7, 32))
    for offset in (0, 100):
        assert float(mx.abs(ours(x, offset=offset) - ref(x, offset=offset)).max()) <= 1e-5
    assert float(mx.abs(ours(x) - make_rope(32, 500000.0, None)(x)).max()) > 1e-3  # it does scale


def test_llama3_rope_rejects_inverted_factors():
    with pytest.raises(ConfigError, match=r"high_freq_factor > low_freq_factor"):
        make_rope(16, 10000.0, {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0})
