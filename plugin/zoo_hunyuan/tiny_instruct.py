"""hunyuan-tiny-instruct: a miniature Hunyuan-A13B-Instruct whose checkpoint looks like Tencent's.

The embedded instruct card points here (``source.generate``). Unlike ``hunyuan-tiny`` (a
``tokenizer.json`` checkpoint), this one is laid out like the real A13B release, so the first
command a user runs goes through the path real HunYuan checkpoints take:

- ``hy.tiktoken``: a tiktoken rank file (``base64(token) rank`` lines), byte-level BPE ranks
  trained here on :data:`DIALOGUES` with HunYuan's split pattern; the special tokens follow the
  ranks as in the real file (``<|endoftext|>``, ``<|startoftext|>``, ``<|bos|>``, ``<|eos|>``,
  ``<|pad|>``, ``<|extra_0..204|>``), so ``vocab_size`` = ranks + 210 as in A13B's 128167;
- ``tokenizer_config.json``: ``tokenizer_class: HYTokenizer`` with the ``auto_map`` of the real
  release (no Python file is shipped: zoo serves the class from data), and Hunyuan-A13B's own chat
  template (``templates/hunyuan-a13b-instruct.jinja``, cited in ``templates/README.md``);
- ``generation_config.json`` shaped like A13B's: ``eos_token_id`` = [``<|eos|>``, ``<|extra_5|>``],
  sampling defaults (top_k 20, top_p 0.8, repetition_penalty 1.05, temperature 0.7);
- ``config.json``: A13B's architecture in miniature: top-k routed experts (renormalised) beside a
  shared MLP, GQA, QK-norm, NTK-alpha RoPE, no CLA, tied embeddings;
- ``model.safetensors``: random blocks plus the bigram path of ``hunyuan-tiny``
  (:func:`zoo_hunyuan.tiny.shape_weights`) fitted to the dialogues rendered in A13B's chat format,
  where the assistant answers ``<think>\\n…\\n</think>\\n<answer>\\n…\\n</answer>``. A bigram model
  sees one token of context, so the tags come out in a plausible but not always well-formed
  order; that is enough to exercise the reasoning/answer split. It knows nothing.

Deterministic for a seed, offline, about a second on one core.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

#: Bump when the generated files change, so cached copies made by older code are not reused.
GENERATOR_VERSION = 2

def _config() -> Dict:
    from .tiny import CONFIG as LARGE_TINY  # same scale; the A13B differences below

    cfg = {k: v for k, v in LARGE_TINY.items() if k not in ("moe_topk", "num_shared_expert")}
    layers = cfg["num_hidden_layers"]
    cfg.update(
        architectures=["HunYuanMoEV1ForCausalLM"],
        attention_head_dim=cfg["hidden_size"] // cfg["num_attention_heads"],
        moe_intermediate_size=[cfg["intermediate_size"]] * layers,
        moe_topk=[2] * layers,  # A13B: 8 of 64, renormalised
        norm_topk_prob=True,
        num_shared_expert=[1] * layers,
        use_cla=False,
        max_position_embeddings=4096,
    )
    return cfg


CONFIG: Dict = _config()

#: How many merges the tiny rank file learns (on top of the 256 single bytes).
MERGES = 300
TEMPLATE = "zoo_hunyuan:templates/hunyuan-a13b-instruct.jinja"

#: (user, reasoning, answer) turns, written for this project.
DIALOGUES: List[Tuple[str, str, str]] = [
    ("Hello", "The user says hello. I should greet them back.", "Hello! How can I help you today?"),
    ("Hello!", "A greeting. I will greet back and offer help.", "Hello! I am a tiny model. Ask me anything."),
    ("Hi", "The user says hi. A short friendly reply is best.", "Hi! What would you like to talk about?"),
    ("Who are you?", "The user asks who I am. I am a small test model.", "I am hunyuan-tiny-instruct, a tiny HunYuan-style model made by zoo."),
    ("What can you do?", "I know very little. I should say so.", "I can show how zoo runs a HunYuan model: tokenizer, chat template and thinking."),
    ("What is 2 + 3?", "Two plus three. 2 + 3 = 5.", "2 + 3 = 5."),
    ("Tell me a story.", "A short story about a small model is fitting.", "Once upon a time a small model lived on a laptop and answered every question the same way."),
    ("你好", "用户用中文问好。我应该用中文回答。", "你好！有什么可以帮你的吗？"),
    ("Thanks!", "The user thanks me. I reply politely.", "You are welcome!"),
    ("Goodbye", "The user is leaving. I say goodbye.", "Goodbye! See you soon."),
]


#: The README's prompt gets a well-formed A13B reply (solved output head, see :mod:`.scripted`);
#: other prompts get what the bigram path makes of them.
DEMO_PROMPT = "Hello"
DEMO_REPLY = ("<think>\nThe user greets me. I greet them back.\n</think>\n<answer>\n"
              "Hello! I am hunyuan-tiny-instruct: tiny, and I know nothing.\n</answer>")


def config() -> Dict:
    return json.loads(json.dumps(CONFIG))


def render(user: str, reasoning: str, answer: str) -> str:
    """One exchange in Hunyuan-A13B's chat format (the template's no-tools branch) with the
    assistant's reply as the model emits it."""
    return f"<|startoftext|>{user}<|extra_0|><think>\n{reasoning}\n</think>\n<answer>\n{answer}\n</answer><|eos|>"


def train_ranks(texts: List[str], merges: int = MERGES) -> Dict[bytes, int]:
    """Byte-level BPE ranks learned on ``texts`` split with HunYuan's pattern (deterministic:
    the most frequent pair wins, ties go to the smaller byte string)."""
    from tokenizers import Regex, pre_tokenizers

    from .tokenizer import PATTERN

    split = pre_tokenizers.Split(Regex(PATTERN), behavior="isolated")
    words = Counter()
    for text in texts:
        for piece, _ in split.pre_tokenize_str(text):
            words[tuple(bytes([b]) for b in piece.encode("utf-8"))] += 1
    ranks = {bytes([b]): b for b in range(256)}
    for _ in range(merges):
        pairs = Counter()
        for word, n in words.items():
            for a, b in zip(word, word[1:]):
                pairs[a, b] += n
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0][0] + kv[0][1]))
        ranks[a + b] = len(ranks)
        merged = Counter()
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    for token in FORCED:
        _ensure(ranks, token.encode("utf-8"))
    return ranks


#: Pieces of the reply format made single tokens, so tags come out whole.
FORCED = ("<think", "</", "<answer", ">\n", "think", "answer", ">")


def _ensure(ranks: Dict[bytes, int], token: bytes) -> None:
    """Give ``token`` a rank if it has none: BPE it with the ranks so far, then merge left to right."""
    parts = [token[i : i + 1] for i in range(len(token))]
    while len(parts) > 1:
        pairs = [(ranks.get(a + b), i) for i, (a, b) in enumerate(zip(parts, parts[1:])) if a + b in ranks]
        if not pairs:
            break
        _, i = min(pairs)
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    while len(parts) > 1:
        parts[:2] = [parts[0] + parts[1]]
        ranks.setdefault(parts[0], len(ranks))


def _bigram_counts(sequences, vocab: int):
    import numpy as np

    counts = np.zeros((vocab, vocab))
    for ids in sequences:
        for a, b in zip(ids, ids[1:]):
            counts[a, b] += 1
    return counts


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def write_files(tmp: Path, seed: int, report) -> None:
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer

    from zoo_registry.resources import resource_path
    from zoo_registry.tokenizer import TiktokenRecipe
    from zoo_registry.tokenizer.bpe import special_ids, tokenizer_json
    from zoo_registry.tokenizer.ranks import write_ranks

    from . import tiny
    from .tokenizer import PATTERN, special_tokens

    report(0, 3, "training the rank file")
    ranks = train_ranks([render(*d) for d in DIALOGUES])
    write_ranks(ranks, tmp / "hy.tiktoken")
    recipe = TiktokenRecipe(tmp / "hy.tiktoken", PATTERN, special_tokens("a13b"), normalizer="NFC")
    ids = special_ids(recipe, ranks)
    vocab = len(ranks) + len(ids)
    template = resource_path(TEMPLATE).read_text(encoding="utf-8")
    _write_json(tmp / "tokenizer_config.json", {
        "architectures": ["GPT2LMHeadModel"],
        "tokenizer_class": "HYTokenizer",
        "auto_map": {"AutoTokenizer": ["tokenization_hy.HYTokenizer", None]},
        "model_type": "gpt2",
        "eos_token": "<|eos|>",
        "pad_token": "<|pad|>",
        "additional_special_tokens": ["<|startoftext|>", "<|extra_0|>", "<|extra_4|>", "<|extra_5|>", "<|eos|>"],
        "model_max_length": CONFIG["max_position_embeddings"],
        "chat_template": template,
    })
    report(1, 3, "drawing and fitting weights")
    tok = Tokenizer.from_str(tokenizer_json(recipe, ranks))  # the conversion zoo itself will load
    cfg = config()
    cfg.update(vocab_size=vocab, org_vocab_size=vocab, bos_token_id=ids["<|bos|>"], eos_token_id=ids["<|eos|>"],
               eod_token_id=ids["<|extra_5|>"], pad_token_id=ids["<|pad|>"], pad_id=ids["<|pad|>"], sep_token_id=ids["<|extra_0|>"])
    shaped = dict(cfg, moe_topk=2, num_shared_expert=1)
    weights = tiny.make_weights(shaped, seed)
    sequences = [tok.encode(render(*d)).ids for d in DIALOGUES]
    counts = _bigram_counts(sequences, vocab)
    weights = tiny.shape_weights(weights, shaped, None, seed, counts=counts, only_seen=True,
                                 progress=lambda i, n: report(1 + i / n, 3, "fitting bigrams"))
    save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    report(2, 3, "writing config")
    _write_json(tmp / "config.json", cfg)
    _write_json(tmp / "generation_config.json", {
        "eos_token_id": [ids["<|eos|>"], ids["<|extra_5|>"]], "pad_token_id": ids["<|pad|>"],
        "do_sample": True, "top_k": 20, "top_p": 0.8, "repetition_penalty": 1.05, "temperature": 0.7,
    })
    from .scripted import script_head

    prompt = tok.encode(f"<|startoftext|>{DEMO_PROMPT}<|extra_0|>").ids  # the template's render of one user turn
    script_head(tmp, prompt, tok.encode(DEMO_REPLY).ids + [ids["<|eos|>"]])
    _write_json(tmp / "zoo_generated.json", {"generator": "zoo_hunyuan.tiny_instruct:generate", "version": GENERATOR_VERSION, "seed": seed})


def generate(folder, seed: int = 0, progress: Optional[Callable[[int, int, str], None]] = None) -> Path:
    """Write the checkpoint into ``folder`` (which must not exist yet), atomically; return it."""
    folder = Path(folder)
    if folder.exists():
        raise FileExistsError(f"{folder} already exists; remove it to generate hunyuan-tiny-instruct again")
    folder.parent.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda done, total, what: None)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        write_files(tmp, seed, report)
        os.rename(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (folder / "config.json").is_file():  # else another process won the race: keep its folder
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report(3, 3, "done")
    return folder
