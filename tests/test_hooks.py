"""One test per hook in hookspecs.py, through the shipped pytest fixture (in-process plugins)."""

import inspect
import types

import pytest

from zoo_registry import hookimpl, hookspecs
from zoo_registry.errors import UnknownNameError


def plugin(**hooks):
    """A plugin object: a namespace of hook implementations."""
    return types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def test_every_hookspec_has_a_docstring_contract_and_a_test():
    specs = [n for n, f in vars(hookspecs).items() if inspect.isfunction(f) and n.startswith("register_")]
    assert sorted(specs) == ["register_architectures", "register_components", "register_model_cards", "register_output_parsers",
                             "register_sanitize_ops", "register_tokenizers"]
    tests = {n for n in globals() if n.startswith("test_hook_")}
    for name in specs:
        assert len(inspect.getdoc(getattr(hookspecs, name))) > 80, name
        assert f"test_hook_{name}" in tests, name


def test_hook_register_architectures(zoo_empty_registry):
    def register_architectures(register):
        register("toyarch", model="zoo_hunyuan.model:build", config_schema="zoo_hunyuan:schemas/hunyuan.config.schema.json",
                 aliases=("toyarch_v2",), description="toy")

    info = zoo_empty_registry.register(plugin(register_architectures=register_architectures), name="toy", version="1.0")
    assert info.status == "loaded", info.error
    arch = zoo_empty_registry.architecture("toyarch_v2")
    assert (arch.name, arch.provider, arch.provider_version) == ("toyarch", "toy", "1.0")
    assert zoo_empty_registry.architecture("llama").provider == "mlx-lm"


def test_hook_register_components(zoo_empty_registry):
    def register_components(register):
        register("pathjoin", "os.path:join", "joins paths")

    zoo_empty_registry.register(plugin(register_components=register_components), name="toy")
    import os.path

    from zoo_registry import get_component

    assert get_component("pathjoin") is os.path.join
    with pytest.raises(UnknownNameError, match="did you mean 'pathjoin'"):
        get_component("pathjion")


def test_hook_register_sanitize_ops(zoo_empty_registry):
    def register_sanitize_ops(register):
        register("my_op", "zoo_hunyuan.ops:SplitGroupedQKV", "an op")

    zoo_empty_registry.register(plugin(register_sanitize_ops=register_sanitize_ops), name="toy")
    op = zoo_empty_registry.op("my_op")
    assert (op.name, op.provider, op.target) == ("my_op", "toy", "zoo_hunyuan.ops:SplitGroupedQKV")


def test_hook_register_model_cards(zoo_empty_registry):
    def register_model_cards(register):
        register("zoo_hunyuan:cards")

    info = zoo_empty_registry.register(plugin(register_model_cards=register_model_cards), name="toy")
    assert info.status == "loaded", info.error
    cards = zoo_empty_registry.cards()
    assert "hunyuan-tiny" in cards
    assert cards.get("hunyuan-tiny").origin == "plugin:toy"


def test_hook_register_output_parsers(zoo_empty_registry):
    from zoo_registry.chat import THINK, output_format
    from zoo_registry.errors import DuplicateNameError

    def register_architectures(register):
        register("toyarch", model="zoo_hunyuan.model:build", config_schema="zoo_hunyuan:schemas/hunyuan.config.schema.json",
                 aliases=("toyarch_v2",))

    def register_output_parsers(register):
        register("toy_think", "zoo_registry.chat.output:THINK", architectures=("toyarch",), description="think tags")

    info = zoo_empty_registry.register(plugin(register_architectures=register_architectures,
                                              register_output_parsers=register_output_parsers), name="toy")
    assert info.status == "loaded", info.error
    parser = zoo_empty_registry.output_parser_for("toyarch_v2")  # found through the architecture's alias
    assert (parser.name, parser.provider, parser.architectures) == ("toy_think", "toy", ("toyarch",))
    assert parser.load() is THINK
    assert output_format("toyarch", registry=zoo_empty_registry) == (THINK, "toy_think")
    assert zoo_empty_registry.output_parser_for("llama") is None
    with pytest.raises(UnknownNameError, match="did you mean 'toy_think'"):
        zoo_empty_registry.output_parser("toy_thnik")

    def claims_the_same_architecture(register):
        register("other_think", "zoo_registry.chat.output:THINK", architectures=("toyarch",))

    other = zoo_empty_registry.register(plugin(register_output_parsers=claims_the_same_architecture), name="other")
    assert other.status == "failed" and isinstance(other.exception, DuplicateNameError)
    assert "'toyarch' is registered by both plugin 'toy' and plugin 'other'" in other.error
    assert "other_think" not in zoo_empty_registry.output_parsers  # all or nothing

    def not_lazy(register):
        register("eager", THINK)

    bad = zoo_empty_registry.register(plugin(register_output_parsers=not_lazy), name="eager")
    assert bad.status == "failed" and "lazy reference" in bad.error


def test_hook_register_tokenizers(zoo_empty_registry, tmp_path, monkeypatch):
    import json

    from zoo_registry.errors import DuplicateNameError
    from zoo_registry.loading import load_tokenizer
    from zoo_registry.tokenizer.ranks import write_ranks

    def register_tokenizers(register):
        register("ToyTokenizer", "zoo_hunyuan.tokenizer:recipe", "HunYuan's recipe under another class name")

    info = zoo_empty_registry.register(plugin(register_tokenizers=register_tokenizers), name="toy")
    assert info.status == "loaded", info.error
    entry = zoo_empty_registry.tokenizer("ToyTokenizer")
    assert (entry.provider, entry.target) == ("toy", "zoo_hunyuan.tokenizer:recipe")
    with pytest.raises(UnknownNameError, match="did you mean 'ToyTokenizer'"):
        zoo_empty_registry.tokenizer("ToyTokeniser")

    def register_again(register):
        register("ToyTokenizer", "zoo_hunyuan.tokenizer:recipe")

    other = zoo_empty_registry.register(plugin(register_tokenizers=register_again), name="other")
    assert other.status == "failed"
    assert other.error == "tokenizer 'ToyTokenizer' is registered by both plugin 'toy' and plugin 'other'"

    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    ranks = {bytes([b]): b for b in range(256)}
    ranks.update({b"ab": 256, b"abc": 257})
    write_ranks(ranks, tmp_path / "hy.tiktoken")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": ["tokenization_toy.ToyTokenizer", None]}}))
    tok = load_tokenizer(tmp_path, registry=zoo_empty_registry)
    assert tok.encode("abc ab<|eos|>") == [257, 32, 256, 258 + 3]  # specials follow the ranks: <|eos|> is the 4th
    assert isinstance(other.exception, DuplicateNameError)


def test_fixture_restores_the_previous_registry(zoo_registry):
    from zoo_registry.registry import get_registry

    assert get_registry() is zoo_registry
    assert zoo_registry.architecture("hunyuan").provider == "hunyuan"
