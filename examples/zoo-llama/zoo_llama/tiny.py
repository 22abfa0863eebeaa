"""zoo-llama-tiny: a random two-layer Llama, with a tokenizer, written locally on first use.

The card ``cards/zoo-llama-tiny.yaml`` names :func:`generate` as its ``source.generate``. The first
time the card is loaded, zoo calls ``generate(folder, seed, progress=...)`` with a fresh folder in
its cache (``ZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/zoo``) and reuses that folder afterwards; a
new seed or a new :data:`GENERATOR_VERSION` gives a new folder. Nothing is downloaded.

The weights are random (``numpy.random.default_rng(seed)``): the model runs every stage of the
real path — card, schema, normalize, rules, model, tokenizer, chat template, generation — and
knows nothing. The tokenizer is a byte-level BPE trained with Hugging Face's ``tokenizers`` on
:data:`TEXT`, so any prompt encodes.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

#: Part of the cache key: bump it when the files written change, so old copies are not reused.
GENERATOR_VERSION = 1

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "zoo_llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "max_position_embeddings": 1024,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
}
SPECIALS = ["<|begin|>", "<|end|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
#: What the tokenizer is trained on (written for this example).
TEXT = """\
zoo-llama is an example plugin for zoo. It serves Llama and Qwen2 checkpoints as model_type
zoo_llama, built from the attention, MLP, norm and rotary embedding that zoo shares with every
plugin. This tiny model has two layers and random weights: hi, hello, how are you? It knows
nothing, but it loads, tokenizes, chats and generates like a real one, offline, in a second.
"""


def train_tokenizer():
    """A byte-level BPE (every byte is a token, so nothing is unknown), deterministic for TEXT."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(TEXT.splitlines(), trainer=trainer)
    return tokenizer


def random_weights(cfg: dict, seed: int) -> dict:
    """float32 tensors under Hugging Face's Llama names: N(0, 1/fan_in) matrices, unit norms."""
    import numpy as np

    rng = np.random.default_rng(seed)
    D, hd = cfg["hidden_size"], cfg["hidden_size"] // cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * hd

    def matrix(rows, cols):
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    tensors = {"model.embed_tokens.weight": matrix(cfg["vocab_size"], D), "model.norm.weight": np.ones(D, np.float32)}
    for i in range(cfg["num_hidden_layers"]):
        shapes = {"self_attn.q_proj": (D, D), "self_attn.k_proj": (kv, D), "self_attn.v_proj": (kv, D),
                  "self_attn.o_proj": (D, D), "mlp.gate_proj": (cfg["intermediate_size"], D),
                  "mlp.up_proj": (cfg["intermediate_size"], D), "mlp.down_proj": (D, cfg["intermediate_size"])}
        tensors.update({f"model.layers.{i}.{name}.weight": matrix(*shape) for name, shape in shapes.items()})
        for norm in ("input_layernorm", "post_attention_layernorm"):
            tensors[f"model.layers.{i}.{norm}.weight"] = np.ones(D, np.float32)
    return tensors


def generate(folder, seed: int = 0, progress=None) -> Path:
    """Write the checkpoint into ``folder``, which must not exist yet, and return it.

    Files are written to a temporary sibling and renamed into place, so an interrupted run leaves
    no half checkpoint; ``FileExistsError`` means another process got there first (zoo then uses
    its folder). ``progress(done, total, what)`` reports each step.
    """
    import mlx.core as mx

    folder = Path(folder)
    if folder.exists():
        raise FileExistsError(f"{folder} already exists")
    folder.parent.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda done, total, what: None)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        report(0, 2, "training the tokenizer")
        tokenizer = train_tokenizer()
        tokenizer.save(str(tmp / "tokenizer.json"))
        ids = {token: tokenizer.token_to_id(token) for token in SPECIALS}
        _write_json(tmp / "tokenizer_config.json", {
            "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin|>", "eos_token": "<|end|>",
            "add_bos_token": False, "clean_up_tokenization_spaces": False, "chat_template": CHAT_TEMPLATE,
        })
        report(1, 2, "drawing the weights")
        cfg = dict(CONFIG, vocab_size=tokenizer.get_vocab_size(), bos_token_id=ids["<|begin|>"], eos_token_id=ids["<|end|>"])
        weights = {name: mx.array(x) for name, x in random_weights(cfg, seed).items()}
        mx.save_safetensors(str(tmp / "model.safetensors"), weights, metadata={"format": "mlx"})
        _write_json(tmp / "config.json", cfg)  # last: zoo takes a folder with config.json as finished
        try:
            tmp.rename(folder)
        except OSError:
            if (folder / "config.json").is_file():  # another process finished first: keep its folder
                raise FileExistsError(f"{folder} already exists") from None
            raise
        report(2, 2, "done")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
