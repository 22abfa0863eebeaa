"""The shipped pytest plugin (zoo_registry.testing): model runner and tiny checkpoints, on HunYuan's tiny configs.

Also checks that the runner really catches what it claims to: a model that ignores its cache, one
whose batch rows leak into each other, and a rule file whose round trip loses a tensor all fail.
"""

import subprocess
import sys
import types

import pytest

import mlx.core as mx

from loading_fixtures import LEGACY, TINY  # noqa: E402

from zoo_registry import hookimpl  # noqa: E402
from zoo_registry.testing import run_model_tests, tiny_checkpoint  # noqa: E402

HUNYUAN = {
    "moe-cla-top1": TINY,
    "legacy-dense-mlp": LEGACY,
    "a13b-topk": dict(TINY, model_type="hunyuan_v1_moe", use_cla=False, num_experts=4, moe_topk=2, tie_word_embeddings=False),
    "v1-dense-head-dim": {k: v for k, v in dict(LEGACY, model_type="hunyuan_v1_dense", head_dim=8).items()
                          if k not in ("num_experts", "moe_topk", "num_shared_expert", "use_mixed_mlp_moe", "use_cla", "cla_share_factor")},
}


@pytest.mark.parametrize("name", sorted(HUNYUAN))
def test_runner_passes_on_hunyuan_tiny_configs(zoo_model_tests, name):
    figures = zoo_model_tests(HUNYUAN[name])
    assert figures["provider"] == "hunyuan"
    assert figures["cache_max_diff"] <= 1e-4 and figures["batch_max_diff"] <= 1e-4
    assert set(figures) >= {"shape", "float32_max_diff", "bfloat16_max_diff", "roundtrip_mlx", "roundtrip_hf"}


def test_hf_layout_is_the_inverse_of_the_exported_rules(tmp_path):
    """tiny_checkpoint(layout="hf") writes per-expert tensors (HunYuan's HF layout), and zoo loads them back."""
    from zoo_registry import load_model
    from zoo_registry.registry import get_registry

    ckpt = tiny_checkpoint(tmp_path / "hf", TINY, "hf", seed=5)
    assert "model.layers.0.mlp.experts.3.up_proj.weight" in ckpt.tensors
    assert not any(".switch_mlp." in k for k in ckpt.tensors)
    model = load_model(ckpt.path, registry=get_registry())
    from mlx.utils import tree_flatten

    got = dict(tree_flatten(model.parameters()))
    assert sorted(got) == sorted(ckpt.weights)
    assert all(mx.array_equal(got[k], v) for k, v in ckpt.weights.items())


def test_custom_layout_function(zoo_tiny_checkpoint):
    ckpt = zoo_tiny_checkpoint(TINY, layout=lambda tensors, config: {k.upper(): v for k, v in tensors.items()})
    assert (ckpt.path / "config.json").is_file() and (ckpt.path / "model.safetensors").is_file()
    assert set(mx.load(str(ckpt.path / "model.safetensors"))) == {k.upper() for k in ckpt.weights}


def test_tiny_checkpoint_fixture_takes_the_documented_calls(zoo_tiny_checkpoint, tmp_path):
    """The guide documents ``tiny_checkpoint(folder, config, layout)``; the fixture once took only
    ``(config, layout)`` and failed on that call with "'PosixPath' object is not iterable"."""
    from zoo_registry.testing import TinyCheckpoint

    here = zoo_tiny_checkpoint(tmp_path / "mine", TINY, "hf")
    default = zoo_tiny_checkpoint(TINY, layout="hf", name="other")
    for ckpt, folder in ((here, tmp_path / "mine"), (default, tmp_path / "other")):
        assert isinstance(ckpt, TinyCheckpoint) and ckpt.path == folder
        assert set(mx.load(str(folder / "model.safetensors"))) == set(ckpt.tensors)
    assert str(zoo_tiny_checkpoint(str(tmp_path / "as-str"), TINY).path) == str(tmp_path / "as-str")
    with pytest.raises(TypeError, match=r"make\(config, ...\) or make\(folder, config, ...\)"):
        zoo_tiny_checkpoint(42, TINY)


# -- the runner catches broken models -------------------------------------------------------------


def _forgets_cache(config):
    """HunYuan, but every call runs without the cache, from position 0 (a classic porting bug)."""
    from zoo_hunyuan.model import Model

    class Forgetful(Model):
        def __call__(self, inputs, cache=None):
            return super().__call__(inputs, None)

    return Forgetful(config)


class _LeakyBatch:
    @staticmethod
    def build(config):
        """HunYuan whose logits mix in the batch mean (rows are no longer independent)."""
        from zoo_hunyuan.model import Model

        class Leaky(Model):
            def __call__(self, inputs, cache=None):
                out = super().__call__(inputs, cache)
                return out + out.mean(axis=0, keepdims=True)

        return Leaky(config)


def _arch_plugin(model_target, rules="zoo_hunyuan:rules/hunyuan.yaml"):
    """A plugin registering HunYuan's schema, rules and normalize with another model builder."""
    def register_architectures(register):
        register("hunyuan", model=model_target, config_schema="zoo_hunyuan:schemas/hunyuan.config.schema.json",
                 rules=rules, normalize="zoo_hunyuan.config:normalize")

    def register_sanitize_ops(register):
        register("split_grouped_qkv", "zoo_hunyuan.ops:SplitGroupedQKV")

    return types.SimpleNamespace(register_architectures=hookimpl(register_architectures),
                                 register_sanitize_ops=hookimpl(register_sanitize_ops))


BROKEN = LEGACY  # served, in an empty registry, by the broken "hunyuan" registered above


def test_runner_catches_a_model_that_ignores_its_cache(zoo_empty_registry):
    zoo_empty_registry.register(_arch_plugin("test_testing_plugin:_forgets_cache"), name="broken")
    with pytest.raises(AssertionError, match=r"cache: prompt \+ cached steps differ from the full forward pass by"):
        run_model_tests(BROKEN)


def test_runner_catches_rows_that_leak_across_the_batch(zoo_empty_registry):
    zoo_empty_registry.register(_arch_plugin("test_testing_plugin:_LeakyBatch.build"), name="broken")
    with pytest.raises(AssertionError, match=r"batch: a batch of 2 differs from its rows run alone by"):
        run_model_tests(BROKEN, layouts=())


def test_runner_catches_a_layout_the_rules_cannot_read(zoo_empty_registry, tmp_path):
    zoo_empty_registry.register(_arch_plugin("zoo_hunyuan.model:build"), name="broken")

    def drops_a_norm(tensors, config):
        tensors.pop("model.norm.weight")
        return tensors

    from zoo_registry import WeightsMismatchError

    with pytest.raises(WeightsMismatchError, match=r"model\.norm\.weight"):
        run_model_tests(BROKEN, tmp_path, layouts=[drops_a_norm])


def test_importing_the_pytest_plugin_imports_no_mlx():
    """pytest loads it in every session of every project in the environment: it must stay light."""
    code = "import sys, zoo_registry.testing; sys.exit(any(m == 'mlx' or m.startswith(('mlx.', 'mlx_lm')) for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
