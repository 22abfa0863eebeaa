"""The fused blocks read their kernel arguments once (runtime/fused.py ``remembered``): never stale.

An MoE block or a SwiGLU MLP keeps what the fused kernel reads of it (arrays, formats) between
calls, so decode does not re-read ~10 modules per block per token. Every way a user changes a
block (``load_weights``, ``update``, attribute assignment, ``nn.quantize``, ``set_dtype``, a layer
swapped for one the kernel does not take, a copy) must be seen at the next call: each test
compares the changed block with a block built fresh with the same weights, which has no cache.
"""

import copy
import gc
import pickle
import weakref

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")
nn = pytest.importorskip("mlx.nn")

from mlx.utils import tree_flatten  # noqa: E402
from kernel_fixtures import require_kernels  # noqa: E402
from zoo_registry import kernels  # noqa: E402
from zoo_registry.runtime import fused  # noqa: E402
from zoo_registry.runtime.mlp import MLP  # noqa: E402
from zoo_registry.runtime.moe import MoE  # noqa: E402

require_kernels(kernels.fused_ffn_available())
X = mx.random.normal((1, 3, 64), key=mx.random.key(7))


def weights(block, seed):
    mx.random.seed(seed)
    return [(k, mx.random.normal(v.shape) * 0.2) for k, v in tree_flatten(block.parameters())]


def moe(seed, bits=None):
    block = MoE(64, 32, 4, 2, shared_hidden_dims=32)
    block.load_weights(weights(block, seed))
    if bits:
        nn.quantize(block, group_size=32, bits=bits,
                    class_predicate=lambda p, m: hasattr(m, "to_quantized") and not p.endswith("wg"))
    return block


def mlp(seed, dtype=mx.bfloat16):
    block = MLP(64, 32)
    block.load_weights(weights(block, seed))
    block.set_dtype(dtype)
    return block


def out(block, x=X):
    y = block(x)
    mx.eval(y)
    return np.array(y.astype(mx.float32))


def remembered(block):
    return block.__dict__.get("_zoo_fused_args")


def test_arguments_are_read_once_and_reused():
    block = moe(0, bits=4)
    first = out(block)
    kept = remembered(block)
    assert kept is not None and kept.args is not None, "the fused kernel did not serve the block"
    assert np.array_equal(out(block), first)
    assert remembered(block) is kept  # not read again
    assert "_zoo_fused_args" not in dict(block)  # not a parameter or child
    assert all("_zoo_fused_args" not in k for k, _ in tree_flatten(block.parameters()))


@pytest.mark.parametrize("bits", [None, 4, 8])
def test_load_weights_is_seen(bits):
    block = moe(0, bits)
    before = out(block)
    other = moe(1, bits)
    block.load_weights(tree_flatten(other.parameters()))
    after = out(block)
    assert not np.array_equal(after, before)
    assert np.array_equal(after, out(moe(1, bits)))


def test_update_and_attribute_assignment_are_seen():
    block, other = moe(0, 4), moe(1, 4)
    out(block)
    block.update(other.parameters())
    assert np.array_equal(out(block), out(moe(1, 4)))
    block = moe(0, 4)
    out(block)
    proj = block.switch_mlp.down_proj
    proj.scales = proj.scales * 2  # one array of one expert projection
    ref = moe(0, 4)
    ref.switch_mlp.down_proj.scales = ref.switch_mlp.down_proj.scales * 2
    assert np.array_equal(out(block), out(ref))
    block.shared_mlp.up_proj = moe(1, 4).shared_mlp.up_proj  # a child module replaced
    ref.shared_mlp.up_proj = moe(1, 4).shared_mlp.up_proj
    assert np.array_equal(out(block), out(ref))


def test_quantize_and_set_dtype_are_seen():
    block = moe(0)
    out(block)  # float32 arguments remembered
    nn.quantize(block, group_size=32, bits=4,
                class_predicate=lambda p, m: hasattr(m, "to_quantized") and not p.endswith("wg"))
    assert np.array_equal(out(block), out(moe(0, 4)))
    dense = mlp(0, mx.float32)
    out(dense)
    dense.set_dtype(mx.bfloat16)
    assert np.array_equal(out(dense), out(mlp(0, mx.bfloat16)))


def test_a_layer_the_kernel_does_not_take_is_seen():
    """A sharded projection (its product all-sums) swapped in after a fused call: unfused from then on."""
    block = mlp(0, mx.float32)
    assert fused.mlp(block, X) is not None
    block.down_proj = nn.layers.distributed.ShardedToAllLinear.from_linear(block.down_proj)
    assert fused.mlp(block, X) is None
    with kernels.disabled():
        ref = out(block)
    np.testing.assert_allclose(out(block), ref, rtol=1e-5, atol=1e-6)
    block = moe(0, 4)
    assert block.fused(X) is not None
    nn.quantize(block.gate, group_size=32, bits=4)  # a quantized router: the kernel reads float ones
    assert block.fused(X) is None


def test_copies_read_their_own_arguments():
    block = moe(0, 4)
    out(block)
    twin = copy.deepcopy(block)
    twin.load_weights(tree_flatten(moe(1, 4).parameters()))
    assert np.array_equal(out(twin), out(moe(1, 4)))
    assert np.array_equal(out(block), out(moe(0, 4)))
    state = pickle.loads(pickle.dumps(remembered(block)))
    assert not state.valid(block)  # a pickled copy is empty: read again


def test_remembering_keeps_no_reference_cycle():
    """A block dropped by its last reference is freed at once (no cycle left for the collector)."""
    block = moe(0, 4)
    out(block)
    ref = weakref.ref(block)
    gc.disable()
    try:
        del block
        assert ref() is None
    finally:
        gc.enable()
