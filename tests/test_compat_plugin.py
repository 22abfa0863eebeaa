"""A plugin written to the guide of 2026-12-01 keeps working unchanged (issue 14, Done-when 3).

``tests/data/compat_plugin`` is a third-party plugin frozen as written to docs/plugin-guide.md on
main at that date. It must NEVER be edited to follow an API change: these tests exist to catch
zoo breaking its documented plugin interface, which editing the plugin in step would hide (the
example plugin, ``examples/zoo-llama``, is edited with the guide and cannot prove this). A change
that breaks it is a break of the public interface: keep the old behaviour, or make it warn with
what to change (and assert that warning here).

The plugin is "installed" as pip would leave it for discovery: a ``zoo_compat-0.1.0.dist-info``
with its entry point in a temporary site folder, and its source folder on the path.
"""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from zoo_registry.errors import ZooWarning

PLUGIN_ROOT = Path(__file__).resolve().parent / "data" / "compat_plugin"
CONFIG = {"model_type": "compat_decoder", "vocab_size": 272, "hidden_size": 32, "intermediate_size": 48,
          "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
          "torch_dtype": "float32", "architectures": ["CompatDecoderForCausalLM"], "eos_token_id": 265}  # <|end|>: after 265 ranks


def _dist_info(site: Path) -> Path:
    info = site / "zoo_compat-0.1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-compat\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[zoo]\nzoo-compat = zoo_compat.hooks\n")
    return site


@pytest.fixture
def compat(tmp_path, monkeypatch):
    """A fresh process-wide registry that discovered the installed plugins plus zoo-compat."""
    from zoo_registry.registry import Registry, get_registry, reset_registry
    from zoo_registry import registry as registry_module

    monkeypatch.syspath_prepend(str(PLUGIN_ROOT))
    monkeypatch.syspath_prepend(str(_dist_info(tmp_path / "site")))
    previous = registry_module._REGISTRY
    with warnings.catch_warnings():
        warnings.simplefilter("error", ZooWarning)  # nothing the plugin does is deprecated
        reset_registry(Registry.discover())
    try:
        yield get_registry()
    finally:
        reset_registry(previous)


def test_discovered_with_every_hook(compat):
    info = {p.name: p for p in compat.plugins}["zoo-compat"]
    assert info.status == "loaded", info.error
    assert (info.version, info.distribution) == ("0.1.0", "zoo-compat")
    assert info.hooks == ["register_architectures", "register_components", "register_model_cards",
                          "register_output_parsers", "register_sanitize_ops", "register_tokenizers"]
    assert compat.architecture("compat_decoder_v1").provider == "zoo-compat"
    assert compat.component("compat_rope").provider == "zoo-compat"
    assert compat.op("compat_conv1d_to_linear").provider == "zoo-compat"
    assert compat.output_parser_for("compat_decoder").name == "compat_think"
    assert compat.tokenizer("CompatTokenizer").provider == "zoo-compat"
    assert compat.cards().get("compat-tiny").data["architecture"] == "compat_decoder"


def test_validates_with_the_guides_errors(compat):
    from zoo_registry import ConfigError
    from zoo_registry.configs import validate_config

    arch, cfg = validate_config(dict(CONFIG), "config.json")
    assert (arch.name, cfg["head_dim"], cfg["tie_word_embeddings"]) == ("compat_decoder", 8, True)
    with pytest.raises(ConfigError, match=r"config.json::\$.num_hidden_layer: unknown key \(did you mean 'num_hidden_layers'\?\)"):
        validate_config({**CONFIG, "num_hidden_layer": 2}, "config.json")
    with pytest.raises(ConfigError, match=r"config.json::\$.num_attention_heads: 4 is not divisible by num_key_value_heads 3"):
        validate_config({**CONFIG, "num_key_value_heads": 3}, "config.json")


def test_passes_the_documented_model_tests_in_both_layouts(compat, zoo_model_tests):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ZooWarning)
        figures = zoo_model_tests(CONFIG)  # the guide's call; layouts "mlx" and "hf" (inverse of export rules)
    assert figures["provider"] == "zoo-compat"
    assert "transformer.wte.weight" in figures["roundtrip_hf"]["names_only_in_file"]


def test_documented_tiny_checkpoint_calls_load(compat, zoo_tiny_checkpoint, tmp_path):
    from zoo_registry import load_model

    for ckpt in (zoo_tiny_checkpoint(CONFIG, layout="hf"), zoo_tiny_checkpoint(tmp_path / "by-folder", CONFIG)):
        model, info = load_model(ckpt.path, return_info=True)
        assert info.provider == "zoo-compat" and info.report.ok


def _rank_file(folder: Path) -> None:
    """``compat.tiktoken``: the 256 bytes, then merges the tokenizer's BPE derives from the ranks."""
    import base64

    tokens = [bytes([i]) for i in range(256)] + [b"he", b"ll", b"llo", b"hello", b" w", b"or", b" wor", b"ld", b" world"]
    (folder / "compat.tiktoken").write_text("".join(f"{base64.b64encode(t).decode()} {i}\n" for i, t in enumerate(tokens)))


def test_generates_through_the_cli_with_its_own_tokenizer(compat, zoo_tiny_checkpoint, fake_site, zoo):
    ckpt = zoo_tiny_checkpoint(CONFIG)
    _rank_file(ckpt.path)
    (ckpt.path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "CompatTokenizer"}))
    env = fake_site.env(PYTHONPATH=os.pathsep.join([str(_dist_info(fake_site.root)), str(PLUGIN_ROOT)]))
    proc = zoo("generate", ckpt.path, "--prompt", "hello world", "--no-chat-template", "--max-tokens", "6", "--temp", "0",
               "--json", env=env, check=0)
    result = json.loads(proc.stdout)
    assert "warning" not in proc.stderr.lower(), proc.stderr
    assert result["prompt_tokens"] == 2  # "hello" " world": the plugin's tokenizer merges, not 11 bytes
    assert result["generation_tokens"] == 6 and result["finish_reason"] == "length"
    assert result["output_parser"] == "compat_think"  # its register_output_parsers claim
