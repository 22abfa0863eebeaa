"""zoo's own runtime components live under the reserved ``zoo.`` namespace; plugins register only
what they add, so a third plugin registering a bare name such as ``moe`` loses nothing.

Before, HunYuan registered the core's classes as ``moe``, ``cla_attention``, ...: a third plugin
registering ``moe`` collided with it and (all or nothing per plugin) lost all its architectures.
"""

import types
import warnings

import pytest

from zoo_registry import get_component, hookimpl
from zoo_registry.builtin_components import DEPRECATED_NAMES
from zoo_registry.errors import ZooWarning


def plugin(**hooks):
    return types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def test_core_registers_its_runtime_under_zoo_namespace(zoo_empty_registry):
    from zoo_registry.runtime import attention, cache, mlp, moe, rope

    core = {name: c for name, c in zoo_empty_registry.components.items() if c.provider == "zoo"}
    assert all(name.startswith("zoo.") and c.description for name, c in core.items())
    assert get_component("zoo.moe") is moe.MoE
    assert get_component("zoo.attention") is attention.Attention
    assert get_component("zoo.mlp") is mlp.MLP
    assert get_component("zoo.rope.ntk_alpha") is rope.NTKAlphaRoPE
    assert get_component("zoo.rope.llama3") is rope.Llama3RoPE
    assert get_component("zoo.cache.shared_kv") is cache.SharedKV
    for c in core.values():
        assert c.load() is not None  # every target imports


def test_hunyuan_registers_only_what_it_adds(zoo_registry):
    hunyuan = sorted(name for name, c in zoo_registry.components.items() if c.provider == "hunyuan")
    assert hunyuan == ["hunyuan.build", "hunyuan.decoder_layer"]
    from zoo_hunyuan.model import DecoderLayer

    assert get_component("hunyuan.decoder_layer") is DecoderLayer


def test_a_third_plugin_registering_moe_keeps_its_architectures(zoo_registry):
    def register_architectures(register):
        register("third_arch", model="zoo_hunyuan.model:build", config_schema="zoo_hunyuan:schemas/hunyuan.config.schema.json")

    def register_components(register):
        register("moe", "os.path:join", "the third plugin's own MoE")

    info = zoo_registry.register(plugin(register_architectures=register_architectures, register_components=register_components),
                                 name="third")
    assert info.status == "loaded", info.error
    assert zoo_registry.architecture("third_arch").provider == "third"
    assert zoo_registry.component("moe").provider == "third"
    import os.path

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the plugin's own name: no deprecation warning
        assert get_component("moe") is os.path.join


@pytest.mark.parametrize("old", sorted(DEPRECATED_NAMES))
def test_old_names_still_answer_with_a_deprecation_warning(zoo_registry, old):
    new = DEPRECATED_NAMES[old]
    with pytest.warns(ZooWarning, match=rf"component '{old}' is deprecated: use '{new}'"):
        assert get_component(old) is get_component(new)


def test_zoo_namespace_is_reserved(zoo_empty_registry):
    info = zoo_empty_registry.register(plugin(register_components=lambda register: register("zoo.moe", "os.path:join")), name="toy")
    assert info.status == "failed"
    assert info.error == ("plugin 'toy' (register_components): component name 'zoo.moe' is in the namespace 'zoo.', "
                          "reserved for zoo's own components")
    assert info.exception.hint == "name it after your plugin, e.g. 'toy.moe'"
    assert get_component("zoo.moe").__name__ == "MoE"


def test_a_collision_between_plugins_names_both(zoo_empty_registry):
    for name in ("first", "second"):
        info = zoo_empty_registry.register(plugin(register_components=lambda register: register("shared.thing", "os.path:join")),
                                           name=name)
    assert info.status == "failed"
    assert info.error == "component 'shared.thing' is registered by both plugin 'first' and plugin 'second'"


def test_zoo_info_shows_a_core_component(zoo):
    out = zoo("info", "zoo.moe", check=0).stdout
    assert out.splitlines()[0] == "component zoo.moe (zoo)"
    assert "target: zoo_registry.runtime.moe:MoE" in out


def test_zoo_info_answers_an_old_name_with_the_new_one(zoo):
    proc = zoo("info", "moe", check=0)
    assert proc.stdout.splitlines()[0] == "component zoo.moe (zoo)"
    assert "zoo: warning: component 'moe' is deprecated: use 'zoo.moe'" in proc.stderr


def test_zoo_list_components_shows_the_core_runtime_and_what_plugins_add(zoo):
    import json

    rows = json.loads(zoo("list", "--components", "--json", check=0).stdout)["components"]
    by_name = {r["name"]: r for r in rows}
    assert by_name["zoo.moe"]["provider"] == "zoo" and by_name["zoo.moe"]["target"] == "zoo_registry.runtime.moe:MoE"
    assert by_name["hunyuan.decoder_layer"]["provider"] == "hunyuan"
    assert by_name["llama3_rope"]["provider"] == "zoo-llama"  # the out-of-tree example plugin's
    providers = [r["provider"] for r in rows]
    assert providers.index("hunyuan") > max(i for i, p in enumerate(providers) if p == "zoo")  # core first
    filtered = zoo("list", "--components", "hunyuan", check=0).stdout
    assert "hunyuan.build" in filtered and "zoo.moe" not in filtered
