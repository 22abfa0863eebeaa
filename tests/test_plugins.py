"""Entry-point discovery through real (fake-installed) distributions, in the real CLI."""

import json

import pytest

GOOD = '''
from zoo_registry import hookimpl

@hookimpl
def register_architectures(register):
    register("toy_arch", model="toyplug.model:build", config_schema="toyplug:toy.schema.json",
             aliases=("toy_alias",), description="a toy architecture")

@hookimpl
def register_components(register):
    register("toy_component", "toyplug.model:build", "does nothing")

@hookimpl
def register_model_cards(register):
    register("toyplug:cards")
'''

TOY_SCHEMA = '{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "additionalProperties": false, "properties": {"model_type": {"const": "toy_arch", "description": "the architecture"}, "hidden_size": {"type": "integer", "minimum": 1, "description": "width"}}, "required": ["model_type"]}'

TOY_CARD = '''
name: toy-model
architecture: toy_arch
description: a toy card
source: {path: ./weights}
'''


def good_plugin(site, dist="zoo-toy", name="toy"):
    site.add(dist, "1.2.3", {name: "toyplug.hooks"}, {"toyplug.hooks": GOOD, "toyplug.model": "def build(config):\n    raise NotImplementedError\n"})
    site.file("toyplug/toy.schema.json", TOY_SCHEMA)
    site.file("toyplug/cards/toy.yaml", TOY_CARD)
    return site


def plugins_json(zoo, env):
    return {p["name"]: p for p in json.loads(zoo("plugins", "--json", env=env, check=0).stdout)}


def test_third_party_plugin_is_discovered_and_listed(fake_site, zoo):
    env = good_plugin(fake_site).env()
    plugins = plugins_json(zoo, env)
    assert plugins["toy"]["status"] == "loaded"
    assert plugins["toy"]["version"] == "1.2.3"
    assert plugins["toy"]["distribution"] == "zoo-toy"
    assert plugins["toy"]["hooks"] == ["register_architectures", "register_components", "register_model_cards"]
    listing = json.loads(zoo("list", "--json", env=env, check=0).stdout)
    archs = {a["name"]: a for a in listing["architectures"]}
    assert archs["toy_arch"]["provider"] == "toy"
    assert archs["toy_arch"]["aliases"] == ["toy_alias"]
    cards = {c["name"]: c for c in listing["cards"]}
    assert cards["toy-model"]["origin"] == "plugin:toy"


def test_hunyuan_is_served_by_its_plugin_and_mlx_lm_builtins_are_listed(isolated_home, zoo):
    listing = json.loads(zoo("list", "--json", check=0).stdout)
    archs = {a["name"]: a for a in listing["architectures"]}
    assert archs["hunyuan"]["provider"] == "hunyuan"
    assert archs["hunyuan"]["shadows"] == ["mlx-lm:hunyuan"]
    assert "hunyuan_v1_moe" in archs["hunyuan"]["aliases"]
    assert archs["hunyuan_v1_dense"]["provider"] == "hunyuan"
    assert archs["llama"]["provider"] == "mlx-lm"
    assert "mistral" in archs["llama"]["aliases"]  # mlx-lm's MODEL_REMAPPING, read without importing it
    assert sum(a["provider"] == "mlx-lm" for a in archs.values()) > 100


BROKEN_IMPORT = "raise ImportError('missing dependency: libfoo')\n"


def test_plugin_that_fails_to_import_is_reported_and_the_rest_keeps_working(fake_site, zoo):
    fake_site.add("zoo-broken", "0.0.1", {"broken": "brokenplug"}, {"brokenplug": BROKEN_IMPORT})
    env = good_plugin(fake_site).env()
    plugins = plugins_json(zoo, env)
    assert plugins["broken"]["status"] == "failed"
    assert "missing dependency: libfoo" in plugins["broken"]["error"]
    assert plugins["broken"]["version"] == "0.0.1"
    assert plugins["toy"]["status"] == "loaded"
    proc = zoo("list", "--json", env=env, check=0)
    names = {a["name"] for a in json.loads(proc.stdout)["architectures"]}
    assert {"toy_arch", "hunyuan"} <= names
    assert "broken" in proc.stderr and "zoo plugins" in proc.stderr
    table = zoo("plugins", env=env, check=0).stdout
    assert "broken" in table and "failed" in table and "libfoo" in table


def test_strict_mode_reraises_a_plugin_failure(fake_site, zoo):
    fake_site.add("zoo-broken", "0.0.1", {"broken": "brokenplug"}, {"brokenplug": BROKEN_IMPORT})
    proc = zoo("list", env=fake_site.env(ZOO_STRICT_PLUGINS="1"))
    assert proc.returncode == 1
    assert "plugin 'broken' failed to import" in proc.stderr
    assert "Traceback" not in proc.stderr


DUPLICATE = '''
from zoo_registry import hookimpl

@hookimpl
def register_architectures(register):
    register("hunyuan", model="dupplug:build", config_schema="dupplug:s.json")
'''


def test_duplicate_name_is_an_error_naming_both_plugins(fake_site, zoo):
    # plugins load in name order, so "zdup" comes after "hunyuan" whatever sys.path says
    fake_site.add("zoo-dup", "2.0", {"zdup": "dupplug.hooks"}, {"dupplug.hooks": DUPLICATE})
    fake_site.file("dupplug/s.json", TOY_SCHEMA)
    plugins = plugins_json(zoo, fake_site.env())
    assert plugins["zdup"]["status"] == "failed"
    assert plugins["zdup"]["error"] == "architecture 'hunyuan' is registered by both plugin 'hunyuan' and plugin 'zdup'"
    assert plugins["hunyuan"]["status"] == "loaded"
    archs = {a["name"]: a for a in json.loads(zoo("list", "--json", env=fake_site.env(), check=0).stdout)["architectures"]}
    assert archs["hunyuan"]["provider"] == "hunyuan"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from zoo_registry import hookimpl\n@hookimpl\ndef register_components(register):\n    raise RuntimeError('boom')\n",
         "plugin 'bad' raised in a hook: RuntimeError: boom"),
        ("from zoo_registry import hookimpl\n@hookimpl\ndef register_components(register):\n    return ['not', 'a', 'callback']\n",
         "plugin 'bad': hook register_components returned list; hooks must call register(...) and return None"),
        ("from zoo_registry import hookimpl\n@hookimpl\ndef register_components(register):\n    register('x', 42)\n",
         "plugin 'bad' (register_components): component 42 must be a lazy reference 'package.module:attr'"),
        ("from zoo_registry import hookimpl\n@hookimpl\ndef register_architectures(register):\n    register('x', model='badplug:build', config_schema='zoo_hunyuan:missing.json')\n",
         "plugin 'bad' (register_architectures): config_schema 'zoo_hunyuan:missing.json' not found at"),
    ],
    ids=["raises", "returns-garbage", "bad-target", "missing-schema"],
)
def test_a_misbehaving_hook_fails_only_its_plugin(fake_site, zoo, source, expected):
    fake_site.add("zoo-bad", "0.1", {"bad": "badplug"}, {"badplug": source})
    plugins = plugins_json(zoo, fake_site.env())
    assert plugins["bad"]["status"] == "failed"
    assert plugins["bad"]["error"].startswith(expected)
    assert plugins["hunyuan"]["status"] == "loaded"


def test_misspelled_hook_implementation_is_an_error_naming_it(fake_site, zoo):
    source = "from zoo_registry import hookimpl\n@hookimpl\ndef register_architecture(register):\n    pass\n"
    fake_site.add("zoo-typo", "0.1", {"typo": "typoplug"}, {"typoplug": source})
    plugins = plugins_json(zoo, fake_site.env())
    assert plugins["typo"]["status"] == "failed"
    assert "register_architecture" in plugins["typo"]["error"]
    assert "unknown hook" in plugins["typo"]["error"]


def test_allow_list_and_block_list(fake_site, zoo):
    env = good_plugin(fake_site).env(ZOO_LOAD_PLUGINS="")
    plugins = plugins_json(zoo, env)
    assert {p["status"] for p in plugins.values()} == {"skipped"}
    archs = {a["name"]: a for a in json.loads(zoo("list", "--json", env=env, check=0).stdout)["architectures"]}
    assert archs["hunyuan"]["provider"] == "mlx-lm"  # the built-in takes over when the plugin is off
    env = fake_site.env(ZOO_LOAD_PLUGINS="toy")
    plugins = plugins_json(zoo, env)
    assert plugins["toy"]["status"] == "loaded" and plugins["hunyuan"]["status"] == "skipped"
    env = fake_site.env(ZOO_DISABLED_PLUGINS="toy, other")
    plugins = plugins_json(zoo, env)
    assert plugins["toy"]["status"] == "skipped" and plugins["hunyuan"]["status"] == "loaded"
    assert plugins["toy"]["error"] == "listed in ZOO_DISABLED_PLUGINS"


def test_duplicate_card_between_plugins_names_both(fake_site, zoo):
    good_plugin(fake_site)
    card_plugin = '''
from zoo_registry import hookimpl

@hookimpl
def register_model_cards(register):
    register("otherplug:cards")
'''
    fake_site.add("zoo-other", "0.1", {"other": "otherplug.hooks"}, {"otherplug.hooks": card_plugin})
    fake_site.file("otherplug/cards/dup.yaml", TOY_CARD)
    plugins = plugins_json(zoo, fake_site.env())
    failed = [p for p in plugins.values() if p["status"] == "failed"]
    assert len(failed) == 1
    assert "model card 'toy-model' is registered by both plugin" in failed[0]["error"]
    assert "'toy'" in failed[0]["error"] and "'other'" in failed[0]["error"]
