"""What tests/test_guide_snippets.py does with the guide's whole-model and generator blocks.

Each driver gets the definition as executed from the guide's own text (``obj``), the example
module it was quoted from, and a temporary folder. The oracle for the model is mlx-lm's own
``llama`` module on the same weights (tied and untied head), prompt and then token by token
through mlx-lm's caches; tests/test_example_plugin_shard.py shards the same model over two ranks.
"""

import json

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from mlx_lm.models import llama as mlx_llama
from mlx_lm.models.cache import make_prompt_cache

CONFIG = {"vocab_size": 64, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 128}


def _mlx_lm_llama(tied: bool, seed: int = 0):
    """mlx-lm's ``llama`` model with random weights, and those weights by name."""
    ref = mlx_llama.Model(mlx_llama.ModelArgs.from_dict(dict(CONFIG, model_type="llama", tie_word_embeddings=tied)))
    mx.random.seed(seed)
    weights = {k: (1.0 if "norm" in k else 0.0) + 0.1 * mx.random.normal(v.shape) for k, v in tree_flatten(ref.parameters())}
    ref.load_weights(list(weights.items()))
    return ref, weights


def _logits(model, tokens, prompt: int):
    """The whole sequence at once, then ``prompt`` tokens and one token at a time through mlx-lm's caches."""
    cache = make_prompt_cache(model)
    steps = [model(tokens[:, :prompt], cache=cache)] + [model(tokens[:, t:t + 1], cache=cache) for t in range(prompt, tokens.shape[1])]
    return model(tokens), mx.concatenate(steps, axis=1)


def drive_model(Model, module, tmp_path):
    tokens = mx.array(np.random.default_rng(1).integers(0, CONFIG["vocab_size"], (2, 12)))
    for tied in (False, True):
        ref, weights = _mlx_lm_llama(tied)
        model = Model(dict(CONFIG, model_type="zoo_llama", tie_word_embeddings=tied))
        model.load_weights(list(weights.items()), strict=True)  # the same names, nothing missing or extra
        assert ("lm_head" in model) is not tied and len(model.layers) == CONFIG["num_hidden_layers"]
        expected = ref(tokens)
        for got in _logits(model, tokens, prompt=8):
            assert float(mx.abs(got - expected).max()) <= 1e-4
        model.shard(mx.distributed.init())  # MLX's group of this one process: a no-op split
        assert float(mx.abs(model(tokens) - expected).max()) <= 1e-4


def drive_llama_model(LlamaModel, module, tmp_path):
    from zoo_llama.config import normalize

    cfg = normalize(dict(CONFIG, model_type="zoo_llama"))
    stack, reference = LlamaModel(cfg), module.LlamaModel(cfg)
    reference.update(stack.parameters())
    tokens = mx.array([[3, 1, 4, 1, 5, 9, 2, 6]])
    assert mx.array_equal(_logits(stack, tokens, 5)[1], _logits(reference, tokens, 5)[1])


def drive_generator(generate, module, tmp_path):
    """The generator writes a folder zoo loads, deterministically for a seed, and never twice."""
    from zoo_registry import load

    folders = [generate(tmp_path / name, seed) for name, seed in (("a", 0), ("b", 0), ("c", 1))]
    files = [{p.name: p.read_bytes() for p in f.iterdir()} for f in folders]
    assert files[0] == files[1] and {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(files[0])
    assert files[2]["model.safetensors"] != files[0]["model.safetensors"]  # the seed draws the weights
    model, tokenizer = load(folders[0])
    assert json.loads(files[0]["config.json"])["vocab_size"] == model.model.embed_tokens.weight.shape[0] == len(tokenizer.get_vocab())
    with pytest.raises(FileExistsError):  # zoo's cache is never overwritten
        generate(folders[0], 0)


def drive_deprecated_getattr(getattr_, module, tmp_path):
    """The renamed component's old target still resolves, to zoo's class, with a warning naming the new name."""
    from zoo_registry.errors import ZooWarning
    from zoo_registry.runtime.rope import Llama3RoPE

    with pytest.warns(ZooWarning, match=r"component 'llama3_rope' is deprecated: use 'zoo.rope.llama3'"):
        assert getattr_("Llama3RoPE") is Llama3RoPE
    with pytest.raises(AttributeError):
        getattr_("Llama2RoPE")


DRIVERS = {"Model": drive_model, "LlamaModel": drive_llama_model, "generate": drive_generator,
           "__getattr__": drive_deprecated_getattr}
