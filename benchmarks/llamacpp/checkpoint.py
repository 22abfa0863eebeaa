"""The random Hunyuan-A13B-shaped checkpoint the llama.cpp comparison runs on, written once.

Shape (the issue's "A13B-shaped small" model): hidden 512, 8 layers, 4 query heads / 1 KV head of
head_dim 128, 16 routed experts top-4 (routing weights renormalised) + 1 shared expert, expert and
shared intermediate 512, no CLA, QK-norm, NTK-alpha RoPE (alpha 1000, theta 1e4), tied embeddings,
vocab 32000. ``config.json`` is Tencent's Hunyuan-A13B one (``model_type: hunyuan``,
``HunYuanMoEV1ForCausalLM``, per-layer lists for ``moe_topk`` / ``moe_intermediate_size`` /
``num_shared_expert``; github.com/Tencent-Hunyuan/Hunyuan-A13B ``models/config.json``) with the
sizes above, so zoo, mlx-lm and llama.cpp's ``convert_hf_to_gguf.py`` all read the same folder.
head_dim 128, alpha 1000, theta 1e4 and max_position_embeddings 32768 are what that converter's
HunYuan RoPE branch asserts.

Weights come from ``benchmarks/checkpoints.py`` (same generator as the other benchmarks: linear
N(0, 1/fan_in), embedding N(0, 0.02), norms 1; seeded). The embedding rows of the three special
tokens are zeroed: their logit through the tied head is then 0, far below the top random logit,
so greedy decoding never stops on ``</s>`` and every tool decodes all requested tokens.

Tokenizer: a byte-level BPE ``tokenizer.json`` (GPT-2 pre-tokenizer, ByteLevel decoder) trained
with ``tokenizers`` on a synthetic corpus to exactly 32000 tokens (ids 0-2 ``<s> </s> <pad>``), so
every id decodes and llama.cpp's ``gpt2`` tokenizer reproduces the Hugging Face ids.
Prompts ``prompt_<N>.txt`` re-encode to exactly N tokens.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import checkpoints  # noqa: E402

LAYERS = 8
SHAPE = dict(hidden_size=512, num_hidden_layers=LAYERS, num_attention_heads=4, num_key_value_heads=1,
             intermediate_size=512, num_experts=16, use_cla=False, cla_share_factor=2, vocab_size=32000)
SPECIAL = checkpoints.SPECIAL
PROMPT_LENGTHS = (16, 128)


def hf_config() -> dict:
    """Tencent's A13B ``config.json`` layout with the small sizes."""
    return {
        "architectures": ["HunYuanMoEV1ForCausalLM"], "model_type": "hunyuan", "attention_bias": False,
        "attention_head_dim": 128, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2,
        "cla_share_factor": 2, "use_cla": False, "hidden_act": "silu", "hidden_size": SHAPE["hidden_size"],
        "initializer_range": 0.02, "intermediate_size": SHAPE["intermediate_size"], "max_position_embeddings": 32768,
        "mlp_bias": False, "moe_intermediate_size": [SHAPE["intermediate_size"]] * LAYERS, "moe_topk": [4] * LAYERS,
        "norm_topk_prob": True, "num_attention_heads": SHAPE["num_attention_heads"], "num_experts": SHAPE["num_experts"],
        "num_hidden_layers": LAYERS, "num_key_value_heads": SHAPE["num_key_value_heads"],
        "num_shared_expert": [1] * LAYERS, "rms_norm_eps": 1e-5,
        "rope_scaling": {"alpha": 1000.0, "beta_fast": 32, "beta_slow": 1, "factor": 1.0, "mscale": 1.0,
                         "mscale_all_dim": 1.0, "type": "dynamic"},
        "rope_theta": 10000.0, "routed_scaling_factor": 1.0, "tie_word_embeddings": True, "torch_dtype": "float32",
        "use_mixed_mlp_moe": True, "use_qk_norm": True, "use_rotary_pos_emb": True, "vocab_size": SHAPE["vocab_size"],
    }


def _corpus(rng: np.random.Generator, words: int = 120_000):
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    for _ in range(words // 1000):
        yield " ".join("".join(rng.choice(letters, rng.integers(2, 11))) for _ in range(1000))


def write_tokenizer(folder: Path, vocab_size: int, seed: int = 7) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(np.random.default_rng(seed)), trainer)
    if tok.get_vocab_size() != vocab_size:
        raise RuntimeError(f"tokenizer trained to {tok.get_vocab_size()} tokens, not {vocab_size}: enlarge the corpus")
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
        "add_bos_token": False, "add_eos_token": False, "model_max_length": 32768, "clean_up_tokenization_spaces": False,
    }, indent=1))


def write_prompts(folder: Path, seed: int = 1) -> None:
    """``prompt_<N>.txt``: random corpus-like words, grown until the text encodes to exactly N tokens."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    for n in PROMPT_LENGTHS:
        words = []
        while True:
            word = "".join(rng.choice(letters, rng.integers(2, 9)))
            count = len(tok.encode(" ".join(words + [word])).ids)
            if count <= n:
                words.append(word)
            if count == n:
                break
        (folder / f"prompt_{n}.txt").write_text(" ".join(words))


def write(folder: Path, seed: int = 0) -> Path:
    """The checkpoint folder (``model.safetensors``, ``config.json``, tokenizer, prompts); kept if present."""
    from safetensors.numpy import save_file

    if (folder / "model.safetensors").is_file() and (folder / f"prompt_{PROMPT_LENGTHS[-1]}.txt").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    weights = checkpoints.hf_weights({**checkpoints.COMMON, **SHAPE}, seed)
    weights["model.embed_tokens.weight"][: len(SPECIAL)] = 0.0
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(hf_config(), indent=1))
    write_tokenizer(folder, SHAPE["vocab_size"])
    write_prompts(folder)
    return folder


def active_weights_per_token() -> int:
    """Parameters one decode step reads: attention, router, shared expert, top-4 experts, LM head."""
    D, I, V = SHAPE["hidden_size"], SHAPE["intermediate_size"], SHAPE["vocab_size"]
    attn = 2 * D * 128 * SHAPE["num_attention_heads"] + 2 * D * 128 * SHAPE["num_key_value_heads"]
    return V * D + LAYERS * (attn + SHAPE["num_experts"] * D + 3 * D * I * (1 + 4))


if __name__ == "__main__":
    print(write(Path(sys.argv[1])))
