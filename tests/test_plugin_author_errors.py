"""What a plugin author meets when a registration or a model is wrong (issue 14, item 8).

A misspelt ``register`` keyword gets "did you mean" naming the plugin and hook; a schema property
without a ``description`` fails the plugin at registration, naming the schema and the key path
(through ``$ref``-ed ``$defs`` and ``anyOf`` branches); a ``model`` target that does not import or
lacks its attribute names the plugin, the architecture and the fix; a model that crashes inside
``zoo_registry.testing``'s runner names the check and the config, its cause chained.
"""

import json
import sys
import types

import pytest

from zoo_registry import hookimpl
from zoo_registry.errors import PluginError
from zoo_registry.registration import undescribed_properties

HUNYUAN_SCHEMA = "zoo_hunyuan:schemas/hunyuan.config.schema.json"


def plugin(**hooks):
    return types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


# -- misspelt register keywords ---------------------------------------------------------------------


@pytest.mark.parametrize("hook, call, wrong, right", [
    ("register_architectures",
     lambda register: register("toy", model="zoo_hunyuan.model:build", config_schema=HUNYUAN_SCHEMA, normalise="m:f"),
     "normalise", "normalize"),
    ("register_architectures",
     lambda register: register("toy", model="zoo_hunyuan.model:build", config_schme=HUNYUAN_SCHEMA),
     "config_schme", "config_schema"),
    ("register_components", lambda register: register("toy.x", "os.path:join", descripton="joins"), "descripton", "description"),
    ("register_sanitize_ops", lambda register: register("toy_op", target="zoo_hunyuan.ops:SplitGroupedQKV", descrption="x"),
     "descrption", "description"),
    ("register_output_parsers", lambda register: register("toyp", "zoo_hunyuan.chat:OUTPUT_FORMAT", architecture=("x",)),
     "architecture", "architectures"),
    ("register_tokenizers", lambda register: register("ToyTokenizer", bulder="zoo_hunyuan.tokenizer:recipe"), "bulder", "builder"),
])
def test_misspelt_register_keyword_says_did_you_mean(zoo_empty_registry, hook, call, wrong, right):
    info = zoo_empty_registry.register(plugin(**{hook: call}), name="toyplug")
    assert info.status == "failed"
    assert info.error == f"plugin 'toyplug' ({hook}): register() got an unknown keyword {wrong!r} (did you mean {right!r}?)"
    assert info.exception.hint.startswith("the callback's signature is register(")


def test_wrong_argument_count_names_the_plugin_and_signature(zoo_empty_registry):
    info = zoo_empty_registry.register(plugin(register_model_cards=lambda register: register()), name="toyplug")
    assert info.status == "failed"
    assert info.error.startswith("plugin 'toyplug' (register_model_cards): missing a required argument: 'resource'")
    assert info.exception.hint == "the callback's signature is register(resource)"


# -- every schema property needs a description ------------------------------------------------------


def _schema_package(tmp_path, monkeypatch, schema, name="descplug"):
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "schema.json").write_text(json.dumps(schema))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    return f"{name}:schema.json"


SCALING = {"type": "object", "additionalProperties": False,
           "properties": {"factor": {"description": "stretch", "type": "number"}, "alpha": {"type": "number"}}}


@pytest.mark.parametrize("schema, missing", [
    ({"type": "object", "properties": {"hidden_size": {"type": "integer"}}}, "$.hidden_size"),
    ({"type": "object", "properties": {"rope": {"description": "RoPE", "type": "object",
                                                 "properties": {"theta": {"type": "number"}}}}}, "$.rope.theta"),
    # a $ref-ed $defs entry is checked where it is used, here inside an anyOf branch
    ({"type": "object", "$defs": {"scaling": SCALING},
      "properties": {"rope_scaling": {"description": "long context", "anyOf": [{"$ref": "#/$defs/scaling"}, {"type": "null"}]}}},
     "$.rope_scaling.alpha"),
    ({"type": "object", "properties": {"layers": {"description": "per layer", "type": "array",
                                                   "items": {"type": "object", "properties": {"width": {"type": "integer"}}}}}},
     "$.layers[].width"),
    ({"type": "object", "patternProperties": {"^vit_": {"type": "string"}}}, "$./^vit_/"),
])
def test_property_without_description_fails_the_plugin_at_registration(zoo_empty_registry, tmp_path, monkeypatch, schema, missing):
    ref = _schema_package(tmp_path, monkeypatch, schema)
    info = zoo_empty_registry.register(plugin(register_architectures=lambda register: register(
        "toy", model="descplug.model:build", config_schema=ref)), name="toyplug")
    assert info.status == "failed"
    assert info.error == (f"plugin 'toyplug' (register_architectures): model_type 'toy': config_schema {ref!r}: "
                          f"every property needs a \"description\"; missing at {missing}")
    assert "$defs entry" in info.exception.hint


def test_a_description_on_the_referenced_definition_or_any_declaration_is_enough():
    schema = {"type": "object", "$defs": {"w": {"description": "width", "type": "integer"}},
              "properties": {"hidden_size": {"$ref": "#/$defs/w"}, "heads": {"description": "heads", "type": "integer"}},
              "if": {"properties": {"heads": {"const": 1}}}, "then": {"properties": {"hidden_size": {"maximum": 64}}},
              "allOf": [{"properties": {"forbidden": False}}]}
    assert undescribed_properties(schema) == []


def test_shipped_schemas_describe_every_property(zoo_registry):
    """HunYuan's two schemas (with their $ref-ed rope definitions) and zoo-llama's pass the check."""
    from zoo_registry.resources import resource_path

    loaded = {p.name: p.status for p in zoo_registry.plugins}
    assert loaded["hunyuan"] == "loaded" and loaded["zoo-llama"] == "loaded"
    for model_type in ("hunyuan", "hunyuan_v1_dense", "zoo_llama"):
        ref = zoo_registry.architecture(model_type).config_schema
        schema = json.loads(resource_path(ref).read_text())
        assert "$defs" in schema, ref  # the check walks into them
        assert undescribed_properties(schema) == [], ref


# -- a bad model target ------------------------------------------------------------------------------


@pytest.mark.parametrize("target, message, hint", [
    ("zoo_hunyuan.modle:build",
     "plugin 'toyplug': model of model_type 'hunyuan': cannot import 'zoo_hunyuan.modle' (from 'zoo_hunyuan.modle:build'): "
     "No module named 'zoo_hunyuan.modle'",
     "install what 'zoo_hunyuan.modle' imports, or correct the 'module:attr' string the plugin registered"),
    ("zoo_hunyuan.model:biuld",
     "plugin 'toyplug': model of model_type 'hunyuan': module 'zoo_hunyuan.model' has no attribute 'biuld' (from 'zoo_hunyuan.model:biuld')",
     "correct the 'module:attr' string the plugin registered (did you mean 'build'?)"),
])
def test_bad_model_target_names_plugin_architecture_and_fix(zoo_empty_registry, target, message, hint):
    from zoo_registry.configs import validate_config
    from zoo_registry.loading import build_model

    from loading_fixtures import TINY

    info = zoo_empty_registry.register(plugin(register_architectures=lambda register: register(
        "hunyuan", model=target, config_schema=HUNYUAN_SCHEMA, normalize="zoo_hunyuan.config:normalize")), name="toyplug")
    assert info.status == "loaded", info.error  # targets are lazy: nothing is imported at registration
    arch, normalised = validate_config(dict(TINY), "config.json")
    with pytest.raises(PluginError) as e:
        build_model(arch, normalised)
    assert str(e.value) == message
    assert e.value.hint == hint


# -- a model that crashes inside the test helpers ----------------------------------------------------


class _CrashesOnCache:
    """Built from HunYuan's model; fails only when called with a cache."""

    @staticmethod
    def build(config):
        from zoo_hunyuan.model import build

        model = build(config)
        original = type(model).__call__

        class Crashing(type(model)):
            def __call__(self, inputs, cache=None):
                if cache is not None:
                    raise IndexError("cache slot 7 out of range")
                return original(self, inputs, cache)

        model.__class__ = Crashing
        return model


def test_model_that_crashes_in_the_runner_names_the_check_and_config(zoo_empty_registry):
    from loading_fixtures import TINY

    from zoo_registry.testing import run_model_tests

    def register_architectures(register):
        register("hunyuan", model="test_plugin_author_errors:_CrashesOnCache.build", config_schema=HUNYUAN_SCHEMA,
                 normalize="zoo_hunyuan.config:normalize")

    assert zoo_empty_registry.register(plugin(register_architectures=register_architectures), name="crashy").status == "loaded"
    config = dict(TINY)
    with pytest.raises(PluginError) as e:
        run_model_tests(config, layouts=())
    message = str(e.value)
    assert message.startswith("run_model_tests: check 'cache' crashed (plugin 'crashy', model_type 'hunyuan') on config {")
    assert f'"hidden_size": {config["hidden_size"]}' in message
    assert message.endswith("IndexError: cache slot 7 out of range")
    assert isinstance(e.value.__cause__, IndexError)  # the model's own traceback stays reachable
