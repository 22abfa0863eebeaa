"""zoo-llama's components: what it adds under its own name, and the old name it keeps answering."""

import pytest


def test_the_plugin_registers_its_decoder_layer():
    from zoo_registry import get_component
    from zoo_llama.model import DecoderLayer

    assert get_component("zoo_llama.decoder_layer") is DecoderLayer


def test_the_old_component_name_still_answers_with_a_deprecation():
    from zoo_registry import get_component
    from zoo_registry.errors import ZooWarning
    from zoo_registry.runtime.rope import Llama3RoPE

    with pytest.warns(ZooWarning, match=r"'llama3_rope' is deprecated: use 'zoo.rope.llama3'"):
        assert get_component("llama3_rope") is Llama3RoPE
    assert get_component("zoo.rope.llama3") is Llama3RoPE
