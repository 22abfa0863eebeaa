"""Plugins that break at first use: each failure is a PluginError naming the plugin, never a traceback.

tests/test_plugins.py covers what fails at discovery (import errors, hooks that raise or return
garbage, invalid targets, missing schema files, duplicate names, misspelled hooks) and
tests/test_cards.py a card requiring a plugin that is missing, too old or disabled. These tests
cover what can only fail when an architecture is used: a schema file that is valid JSON but not
a JSON Schema, a ``normalize`` or model builder that crashes or returns the wrong thing, a model
module that does not import.
"""

import json
import sys
import textwrap

import pytest

from zoo_registry import hookimpl
from zoo_registry.configs import validate_config
from zoo_registry.errors import PluginError
from zoo_registry.loading import build_model

CONFIG = {"model_type": "toy", "hidden_size": 8}


@pytest.fixture
def toy_package(tmp_path, monkeypatch):
    """An importable package ``toyplug_<n>`` on sys.path with a module and a schema file."""
    created = []

    def make(schema, module_source):
        name = f"toyplug_{len(created)}_{abs(hash(str(tmp_path))) % 10**6}"
        pkg = tmp_path / name
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        (pkg / "schema.json").write_text(json.dumps(schema) if not isinstance(schema, str) else schema)
        (pkg / "impl.py").write_text(textwrap.dedent(module_source))
        created.append(name)
        return name

    monkeypatch.syspath_prepend(str(tmp_path))
    yield make
    for name in created:
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[mod]


GOOD_SCHEMA = {"type": "object", "properties": {"model_type": {"description": "the architecture", "const": "toy"},
                                               "hidden_size": {"description": "width", "type": "integer"}}}
MODULE = """
    import mlx.nn as nn

    def normalize(cfg):
        return cfg

    def crashing_normalize(cfg):
        return cfg["no_such_key"]

    def listing_normalize(cfg):
        return [cfg]

    def build(cfg):
        return nn.Linear(cfg["hidden_size"], 2)

    def crashing_build(cfg):
        return nn.Linear(cfg["hidden_size"], "two")

    def garbage_build(cfg):
        return {"not": "a module"}
"""


def register_toy(registry, package, *, model="build", normalize="normalize", name="toyplugin"):
    class Plugin:
        @hookimpl
        def register_architectures(self, register):
            register("toy", model=f"{package}.impl:{model}", config_schema=f"{package}:schema.json",
                     normalize=f"{package}.impl:{normalize}" if normalize else None)

    info = registry.register(Plugin(), name=name, version="0.1")
    assert info.status == "loaded", info.error
    return registry.architecture("toy")


def test_schema_that_is_json_but_not_a_json_schema_is_that_plugins_error(zoo_empty_registry, toy_package):
    package = toy_package({"type": "object", "properties": {"hidden_size": {"description": "width", "type": "integre"}}}, MODULE)
    register_toy(zoo_empty_registry, package)  # registration only checks it is JSON (no jsonschema import)
    with pytest.raises(PluginError) as e:
        validate_config(dict(CONFIG), "config.json")
    path = zoo_empty_registry.architecture("toy").config_schema
    from zoo_registry.resources import resource_path

    assert str(e.value).startswith(
        f"plugin 'toyplugin': config_schema of model_type 'toy': schema {resource_path(path)} ({path}) is not a valid JSON Schema "
        "(draft 2020-12): 'integre' is not valid under any of the given schemas at $.properties.hidden_size.type"
    )
    assert e.value.hint == ("the plugin ships a broken schema; reinstall or upgrade it, or report it to its authors "
                            "(`zoo plugins` shows 'toyplugin')")


def test_schema_that_is_not_an_object(zoo_empty_registry, toy_package):
    package = toy_package([1, 2, 3], MODULE)
    register_toy(zoo_empty_registry, package)
    with pytest.raises(PluginError, match=r"^plugin 'toyplugin': config_schema of model_type 'toy': schema .*schema.json "
                                          r"\(toyplug_\d+_\d+:schema.json\) is not a valid JSON Schema \(draft 2020-12\): "
                                          r"a schema is an object, got list$"):
        validate_config(dict(CONFIG), "config.json")


def test_normalize_that_crashes_is_a_plugin_error(zoo_empty_registry, toy_package):
    package = toy_package(GOOD_SCHEMA, MODULE)
    register_toy(zoo_empty_registry, package, normalize="crashing_normalize")
    with pytest.raises(PluginError) as e:
        validate_config(dict(CONFIG), "config.json")
    assert str(e.value) == f"plugin 'toyplugin': normalize {package}.impl:crashing_normalize crashed on config.json: KeyError: 'no_such_key'"
    assert e.value.hint == "this is a bug in the plugin 'toyplugin'; report it with the config that triggers it"


def test_normalize_that_returns_garbage(zoo_empty_registry, toy_package):
    package = toy_package(GOOD_SCHEMA, MODULE)
    register_toy(zoo_empty_registry, package, normalize="listing_normalize")
    with pytest.raises(PluginError) as e:
        validate_config(dict(CONFIG), "config.json")
    assert str(e.value) == f"plugin 'toyplugin': normalize {package}.impl:listing_normalize returned list for config.json, not a config dict"


def test_normalize_that_does_not_exist(zoo_empty_registry, toy_package):
    package = toy_package(GOOD_SCHEMA, MODULE)
    register_toy(zoo_empty_registry, package, normalize="nromalize")
    with pytest.raises(PluginError) as e:
        validate_config(dict(CONFIG), "config.json")
    assert str(e.value) == (f"plugin 'toyplugin': normalize of model_type 'toy': module '{package}.impl' has no attribute 'nromalize' "
                            f"(from '{package}.impl:nromalize')")


def test_model_module_that_fails_to_import(zoo_empty_registry, toy_package):
    package = toy_package(GOOD_SCHEMA, "import a_dependency_nobody_installed\n")
    arch = register_toy(zoo_empty_registry, package, normalize=None)
    _, cfg = validate_config(dict(CONFIG), "config.json")
    with pytest.raises(PluginError) as e:
        build_model(arch, cfg)
    assert str(e.value) == (f"plugin 'toyplugin': model of model_type 'toy': cannot import '{package}.impl' "
                            f"(from '{package}.impl:build'): No module named 'a_dependency_nobody_installed'")


def test_model_builder_that_crashes(zoo_empty_registry, toy_package):
    package = toy_package(GOOD_SCHEMA, MODULE)
    arch = register_toy(zoo_empty_registry, package, model="crashing_build")
    _, cfg = validate_config(dict(CONFIG), "config.json")
    with pytest.raises(PluginError) as e:
        build_model(arch, cfg)
    assert str(e.value).startswith(f"plugin 'toyplugin': building model_type 'toy' ({package}.impl:crashing_build) crashed on a validated "
                                   "config: TypeError: ")
    assert e.value.hint == "this is a bug in the plugin 'toyplugin'; report it with the config.json that triggers it"


def test_model_builder_that_returns_garbage(zoo_empty_registry, toy_package):
    package = toy_package(GOOD_SCHEMA, MODULE)
    arch = register_toy(zoo_empty_registry, package, model="garbage_build")
    _, cfg = validate_config(dict(CONFIG), "config.json")
    with pytest.raises(PluginError) as e:
        build_model(arch, cfg)
    assert str(e.value) == f"plugin 'toyplugin': {package}.impl:garbage_build returned dict, not an mlx.nn.Module"


def test_a_working_toy_plugin_builds(zoo_empty_registry, toy_package):
    package = toy_package(GOOD_SCHEMA, MODULE)
    arch = register_toy(zoo_empty_registry, package)
    _, cfg = validate_config(dict(CONFIG), "config.json")
    assert build_model(arch, cfg).weight.shape == (2, 8)
