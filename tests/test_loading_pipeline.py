"""The loading package: stages with one job each, precision decided by the architecture, mlx-lm's
classes found without its private ``_get_classes``."""

import ast
import importlib
import pkgutil
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import pytest
from mlx.utils import tree_flatten

import zoo_registry.loading as loading
from loading_fixtures import write_checkpoint
from zoo_registry.loading import plan, quantize_model
from zoo_registry.loading.builtin import mlx_lm_classes

LLAMA = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
         "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "vocab_size": 64,
         "tie_word_embeddings": True}


def test_every_stage_is_small_and_says_its_job():
    folder = Path(loading.__file__).parent
    names = [m.name for m in pkgutil.iter_modules([str(folder)])]
    assert {"resolve", "config", "integrity", "quantize", "builtin", "plugin", "plan"} <= set(names)
    for path in folder.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) < 400, path.name
        assert ast.get_docstring(ast.parse(text)), f"{path.name} has no module docstring"


class KeptRouter(nn.Module):
    keep_float = True

    def __init__(self):
        super().__init__()
        self.wg = nn.Linear(64, 4, bias=False)


class Block(nn.Module):
    def __init__(self, router):
        super().__init__()
        self.gate = router
        self.up_proj = nn.Linear(64, 64, bias=False)


class Layer(nn.Module):
    def __init__(self, router):
        super().__init__()
        self.mlp = Block(router)


class Toy(nn.Module):
    def __init__(self, router):
        super().__init__()
        self.layers = [Layer(router)]


def test_a_module_that_declares_keep_float_stays_unquantized():
    model = Toy(KeptRouter())
    quantize_model(model, 4, 64)
    assert type(model.layers[0].mlp.gate.wg) is nn.Linear
    assert isinstance(model.layers[0].mlp.up_proj, nn.QuantizedLinear)


def test_a_model_that_declares_keep_float_gets_no_name_based_guess():
    """No architecture's names in the core: once a model declares, an undeclared ``mlp.gate`` is quantized."""
    model = Toy(nn.Linear(64, 4, bias=False))
    model.layers.append(Layer(KeptRouter()))
    quantize_model(model, 4, 64)
    assert isinstance(model.layers[0].mlp.gate, nn.QuantizedLinear)
    assert type(model.layers[1].mlp.gate.wg) is nn.Linear


def test_a_model_that_declares_nothing_keeps_its_router_by_name_with_a_deprecation():
    """A plugin written before ``keep_float`` keeps today's behaviour and is told what to change."""
    from zoo_registry.errors import ZooWarning

    model = Toy(nn.Linear(64, 4, bias=False))
    with pytest.warns(ZooWarning, match="keep_float = True"):
        quantize_model(model, 4, 64)
    assert type(model.layers[0].mlp.gate) is nn.Linear
    assert isinstance(model.layers[0].mlp.up_proj, nn.QuantizedLinear)


def test_zoo_moe_router_declares_keep_float():
    from mlx_lm.models.switch_layers import QuantizedSwitchLinear

    from zoo_registry.runtime.moe import MoE

    moe = MoE(64, 128, 4, 2)
    quantize_model(moe, 4, 64)
    assert type(moe.gate.wg) is nn.Linear
    assert isinstance(moe.switch_mlp.up_proj, QuantizedSwitchLinear)


def test_mlx_lm_models_keep_their_routers_unquantized():
    """mlx-lm's own classes keep today's default: ``mlp.gate`` (and its hunyuan's ``mlp.gate.wg``)."""
    config = {"model_type": "qwen2_moe", "hidden_size": 64, "num_hidden_layers": 1, "intermediate_size": 128,
              "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "vocab_size": 64,
              "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 64,
              "shared_expert_intermediate_size": 64, "decoder_sparse_step": 1, "mlp_only_layers": []}
    model_class, args_class = mlx_lm_classes(config)
    model = model_class(args_class.from_dict(config))
    quantize_model(model, 4, 64)
    assert type(model.model.layers[0].mlp.gate) is nn.Linear
    assert isinstance(model.model.layers[0].self_attn.q_proj, nn.QuantizedLinear)


@pytest.mark.parametrize("config", [
    LLAMA,
    {"model_type": "mistral"},  # renamed by mlx-lm's MODEL_REMAPPING
])
def test_mlx_lm_classes_agree_with_mlx_lm_dispatch(config):
    from mlx_lm.utils import _get_classes  # the oracle: mlx-lm's own dispatch

    assert mlx_lm_classes(config) == _get_classes(config)


def test_mlx_lm_classes_follow_architecture_remapping():
    from mlx_lm import utils

    (model_type, architecture), _ = next(iter(utils.MODEL_ARCHITECTURE_REMAPPING.items()))
    config = {"model_type": model_type, "architectures": [architecture]}
    assert mlx_lm_classes(config) == utils._get_classes(config)


def test_plan_of_an_mlx_lm_model_does_not_use_its_private_dispatch(tmp_path, monkeypatch):
    from mlx_lm import utils
    from mlx_lm.models import llama

    ref = llama.Model(llama.ModelArgs.from_dict(LLAMA))
    folder = write_checkpoint(tmp_path / "llama", dict(tree_flatten(ref.parameters())), LLAMA)

    def private(*args, **kwargs):
        raise AssertionError("plan() called mlx_lm.utils._get_classes")

    monkeypatch.setattr(utils, "_get_classes", private)
    p = plan(folder)
    assert p.report.ok and p.info.provider == "mlx-lm"
    assert p.tensors["model.embed_tokens.weight"] == ((64, 64), "float32")


def test_old_private_names_still_import():
    for name in ("_prepare", "_load_builtin", "_load_plugin", "_mx_dtype", "_resolve_source", "_card_quantization", "tied_head"):
        assert hasattr(loading, name), name
    assert importlib.import_module("zoo_registry.loading").load_tokenizer is not None
    assert loading.mx_dtype("bfloat16") == mx.bfloat16


def test_the_two_evaluate_functions_have_distinct_names():
    from zoo_registry import distributed, generation

    assert generation.evaluate_with_progress is not distributed.evaluate_parameters
    with pytest.deprecated_call():
        assert generation.evaluate_parameters is generation.evaluate_with_progress
