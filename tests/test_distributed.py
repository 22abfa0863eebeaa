"""Single-process tests of zoo's sharding rules and launch detection.

The two-rank runs live in ``test_distributed_launch.py``. Here: every split that cannot work
raises a :class:`ConfigError` naming the layer, the size and the fix, before anything is modified;
a group of one is a no-op; ``world()`` joins a group only when a launcher says there are several
processes. Group sizes above one are represented by :class:`Group`, a stand-in carrying only
``size()`` and ``rank()``: the checks run before any communication, so nothing else is needed.
"""

from __future__ import annotations

import json

import pytest

import mlx.core as mx
import mlx.nn as nn

from mlx.utils import tree_flatten  # noqa: E402

from zoo_registry import distributed  # noqa: E402
from zoo_registry.errors import ConfigError  # noqa: E402
from zoo_registry.runtime.attention import Attention  # noqa: E402
from zoo_registry.runtime.mlp import MLP  # noqa: E402
from zoo_registry.runtime.moe import MoE  # noqa: E402
from zoo_registry.runtime.rope import make_rope  # noqa: E402
from zoo_registry.runtime.sharding import (  # noqa: E402
    choose_moe_strategy,
    shard_attention,
    shard_layers,
    shard_mlp,
    shard_moe,
)


from zoo_registry.distributed import PlanGroup as Group  # noqa: E402 - a stand-in for mx.distributed.Group (sizes only)


def attention(heads=8, kv=4, hd=16, kv_proj=True):
    return Attention(heads * hd, heads, kv, hd, make_rope(hd, 10000.0, None, None), kv_proj=kv_proj, qk_norm=True)


class Layer(nn.Module):
    def __init__(self, attn, mlp):
        super().__init__()
        self.self_attn, self.mlp = attn, mlp


def snapshot(*modules):
    return [[(k, v.shape) for k, v in tree_flatten(m.parameters())] for m in modules]


def test_heads_must_divide():
    with pytest.raises(ConfigError) as e:
        shard_attention(attention(heads=6, kv=2), Group(4), where="model.layers.3.self_attn")
    assert str(e.value) == "model.layers.3.self_attn: 6 attention heads cannot be split across 4 ranks"
    assert "num_attention_heads" in e.value.hint


def test_kv_heads_must_divide():
    with pytest.raises(ConfigError) as e:
        shard_attention(attention(heads=8, kv=2), Group(4))
    assert str(e.value) == "self_attn: 2 key/value heads cannot be split across 4 ranks"
    assert "num_key_value_heads" in e.value.hint


def test_a_whole_projection_qk_norm_is_refused_at_shard_time():
    # OLMo 2's QK-norm spans every head; a rank holding half the heads would normalise the wrong RMS
    attn = Attention(128, 8, 4, 16, make_rope(16, 10000.0, None, None), qk_norm=True,
                     qk_norm_placement="before_rope", qk_norm_scope="projection", qk_norm_names=("q_norm", "k_norm"))
    before = snapshot(attn)
    with pytest.raises(ConfigError) as e:
        shard_attention(attn, Group(2), where="model.layers.0.self_attn")
    assert str(e.value).startswith("model.layers.0.self_attn: a QK-norm over the whole projection")
    assert "one process" in e.value.hint
    assert snapshot(attn) == before
    shard_attention(attention(), Group(2))  # a per-head norm splits with its heads


def test_mlp_intermediate_must_divide():
    with pytest.raises(ConfigError) as e:
        shard_mlp(MLP(64, 96), Group(5), where="model.layers.0.mlp")
    assert str(e.value) == "model.layers.0.mlp: intermediate size 96 cannot be split across 5 ranks"


def test_quantized_split_must_fall_on_groups():
    """128 input columns over 4 ranks is 32 each: half of a 64-wide quantization group."""
    mlp = MLP(128, 128)
    nn.quantize(mlp, group_size=64, bits=4)
    with pytest.raises(ConfigError) as e:
        shard_mlp(mlp, Group(4))
    assert str(e.value) == (
        "mlp: down_proj has 128 input columns, not divisible by 4 ranks x quantization group size 64 (= 256)"
    )
    assert "smaller group size" in e.value.hint
    choose_moe_strategy(MoE(128, 128, 4, 1, 128), 2)  # 128 / 2 = 64: one whole group each: fine


def test_experts_must_divide_for_expert_parallel():
    with pytest.raises(ConfigError) as e:
        shard_moe(MoE(64, 64, 6, 2), Group(4), strategy="expert")
    assert str(e.value) == "mlp: 6 experts cannot be split across 4 ranks"


def test_moe_intermediate_needs_a_quantization_group_per_rank():
    """Inside an MoE the intermediate split may be uneven, but only in whole quantization groups."""
    moe = MoE(64, 128, 8, 2)
    nn.quantize(moe.switch_mlp, group_size=64, bits=4)  # 128 = 2 groups of 64
    with pytest.raises(ConfigError) as e:
        shard_moe(moe, Group(4), strategy="tensor")
    assert str(e.value) == (
        "mlp: expert intermediate size 128 cannot be split across 4 ranks in whole quantization groups of 64"
    )
    assert "strategy='expert'" in e.value.hint


def test_uneven_intermediate_split_covers_every_column_once():
    """3 quantization groups over 2 ranks: 1 + 2 groups; together exactly the original block."""
    D, I = 64, 96
    pieces = []
    for r in (0, 1):
        mx.random.seed(0)
        moe = MoE(D, I, 4, 1, shared_hidden_dims=I)
        nn.quantize(moe, group_size=32, bits=4, class_predicate=lambda p, m: p != "gate.wg" and hasattr(m, "to_quantized"))
        full = moe.switch_mlp.down_proj.weight
        shard_moe(moe, Group(2, r), strategy="tensor")
        pieces.append((moe.switch_mlp.gate_proj.scales.shape[1], moe.switch_mlp.down_proj.weight, full))
    assert [p[0] for p in pieces] == [32, 64]  # gate rows per rank: 1 group, then 2
    joined = mx.concatenate([pieces[0][1], pieces[1][1]], axis=-1)
    assert mx.array_equal(joined, pieces[0][2])


def test_auto_falls_back_to_expert_parallel_then_fails_clearly():
    # 4-bit experts 64 wide = 1 group of 64: no group for a second rank; 4 experts split.
    moe = MoE(64, 64, 4, 1)
    nn.quantize(moe.switch_mlp, group_size=64, bits=4)
    assert choose_moe_strategy(moe, 2) == "expert"
    assert choose_moe_strategy(MoE(64, 64, 4, 1), 2) == "tensor"
    moe = MoE(64, 64, 6, 1)
    nn.quantize(moe.switch_mlp, group_size=32, bits=4)
    with pytest.raises(ConfigError) as e:
        choose_moe_strategy(moe, 4)
    assert str(e.value) == (
        "mlp: expert intermediate size 64 cannot be split across 4 ranks in whole quantization groups of 32; "
        "and 6 experts cannot be split across 4 ranks"
    )


def test_shared_mlp_is_checked_too():
    with pytest.raises(ConfigError) as e:
        shard_moe(MoE(64, 64, 4, 1, shared_hidden_dims=6), Group(8), strategy="expert")
    assert str(e.value) == "mlp.shared_mlp: intermediate size 6 cannot be split across 8 ranks"


def test_unknown_strategy():
    with pytest.raises(ConfigError, match="unknown MoE sharding strategy 'pipeline'"):
        shard_moe(MoE(64, 64, 4, 1), Group(2), strategy="pipeline")


def test_a_failed_shard_leaves_the_model_untouched():
    """Layer 0 would split, layer 1's MoE cannot: nothing may be sharded."""
    layers = [Layer(attention(), MoE(128, 64, 4, 1, 64)), Layer(attention(kv_proj=False), MoE(128, 64, 6, 1, 64))]
    before = snapshot(*layers)
    with pytest.raises(ConfigError) as e:
        shard_layers(layers, Group(4), moe_strategy="expert")
    assert str(e.value) == "model.layers.1.mlp: 6 experts cannot be split across 4 ranks"
    assert snapshot(*layers) == before
    assert type(layers[0].mlp) is MoE and layers[0].self_attn.n_heads == 8


def test_cla_consumer_must_match_its_owner():
    layers = [Layer(attention(heads=8, kv=4), MLP(128, 64)), Layer(attention(heads=8, kv=2, kv_proj=False), MLP(128, 64))]
    with pytest.raises(ConfigError) as e:
        shard_layers(layers, Group(2))
    assert str(e.value) == (
        "model.layers.1.self_attn: shares K/V with model.layers.0.self_attn but has a different head layout "
        "(heads/kv/head_dim 8/2/16 vs 8/4/16)"
    )


def test_unknown_block_is_named():
    class Odd(nn.Module):
        pass

    with pytest.raises(ConfigError, match=r"model.layers.0.mlp: Odd has no sharding rule"):
        shard_layers([Layer(attention(), Odd())], Group(2))


def test_a_group_of_one_changes_nothing():
    group = mx.distributed.init()  # the real singleton group of a process not launched as a group
    assert group.size() == 1
    layers = [Layer(attention(), MoE(128, 64, 4, 1, 64)), Layer(attention(kv_proj=False), MLP(128, 64))]
    before = snapshot(*layers)
    shard_layers(layers, group)
    assert snapshot(*layers) == before and type(layers[0].mlp) is MoE


def test_hunyuan_model_shard_checks_divisibility():
    """The plugin's ``model.shard`` goes through the same checks: 4 heads over 3 ranks."""
    from zoo_hunyuan import tiny
    from zoo_hunyuan.model import build

    cfg = tiny.config()
    cfg["vocab_size"] = 64
    model = build(cfg)
    with pytest.raises(ConfigError, match=r"^model.layers.0.self_attn: 4 attention heads cannot be split across 3 ranks$"):
        model.shard(Group(3))


# ---------------------------------------------------------------------------------------------
# launch detection


LAUNCH_VARS = ("MLX_RANK", "MLX_HOSTFILE", "MLX_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MLX_IBV_DEVICES")


@pytest.fixture
def clean_env(monkeypatch):
    for var in LAUNCH_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(distributed, "_world", distributed._UNSET)
    yield monkeypatch
    distributed._world = distributed._UNSET


def test_single_process_is_not_distributed(clean_env):
    assert distributed.launched_size() == 1
    assert distributed.world() is None
    assert distributed.rank() == 0 and distributed.size() == 1 and distributed.is_primary()


def test_ring_hostfile_gives_the_size(clean_env, tmp_path):
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps([["127.0.0.1:5000"], ["127.0.0.1:5001"], ["127.0.0.1:5002"]]))
    clean_env.setenv("MLX_RANK", "1")
    clean_env.setenv("MLX_HOSTFILE", str(hostfile))
    assert distributed.launched_size() == 3


def test_mlx_launch_of_one_process_is_not_distributed(clean_env, tmp_path):
    """``mlx.launch -n 1`` writes an empty hostfile: a single process, no group to join."""
    hostfile = tmp_path / "empty"
    hostfile.write_text("\n")
    clean_env.setenv("MLX_RANK", "0")
    clean_env.setenv("MLX_HOSTFILE", str(hostfile))
    assert distributed.launched_size() == 1 and distributed.world() is None


@pytest.mark.parametrize("var", ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MLX_WORLD_SIZE"])
def test_mpi_and_nccl_sizes(clean_env, var):
    clean_env.setenv(var, "4")
    assert distributed.launched_size() == 4


def test_jaccl_device_matrix_gives_the_size(clean_env, tmp_path):
    devices = tmp_path / "ibv.json"
    devices.write_text(json.dumps([[None, "rdma_en2"], ["rdma_en2", None]]))
    clean_env.setenv("MLX_IBV_DEVICES", str(devices))
    assert distributed.launched_size() == 2


def test_shard_model_without_a_group_is_a_no_op():
    model = MLP(8, 8)
    distributed.shard_model(model, None)
    assert "weight" in model.gate_proj and not hasattr(model.gate_proj, "group")


def test_shard_model_refuses_a_model_without_layers():
    with pytest.raises(ConfigError, match="cannot be sharded: it has no shard\\(\\) and no layers"):
        distributed.shard_model(nn.Linear(4, 4), Group(2))
