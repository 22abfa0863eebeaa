"""hunyuan-tiny: a miniature HunYuan-Large checkpoint built locally, deterministically, offline.

The embedded default model card ``hunyuan-tiny`` points here (``source.generate``). The first time
the card is used, :func:`generate` writes a real Hugging Face-layout checkpoint into the zoo cache:

- ``config.json``: ``model_type: hunyuan`` with every HunYuan-Large feature switched on, in
  miniature: cross-layer attention (CLA) with share factor 2, a mixture of experts routed top-1
  with a shared MLP beside it, QK-norm, NTK-alpha RoPE (``rope_scaling: {type: dynamic, alpha,
  factor}``) and tied embeddings (Sun et al., "Hunyuan-Large", arXiv:2411.02265, Sec. 2).
- ``model.safetensors``: weights named as in Tencent's checkpoints, one tensor per expert
  (``model.layers.{i}.mlp.experts.{e}.{gate,up,down}_proj.weight``), the router as
  ``mlp.gate.wg.weight``, and no ``k_proj``/``v_proj`` in the layers that borrow K/V (odd layers),
  so loading exercises the same sanitize rules (expert stacking, CLA) as the real models.
- ``tokenizer.json`` / ``tokenizer_config.json``: a byte-level BPE tokenizer trained with the
  ``tokenizers`` package on :data:`TEXT` below, with special tokens and a small chat template.
- ``generation_config.json``.

Everything comes from ``numpy.random.default_rng(seed)``, a deterministic BPE training run and a
fixed number of numpy optimisation steps, so the same seed gives the same bytes (across machines,
up to float64 BLAS rounding before the cast to float32). The folder is written to a temporary
sibling and renamed into place, so a crash never leaves half a checkpoint behind.

The point is that every stage of the real path runs: card → schema → plugin → sanitize rules →
MLX model → tokenizer → generation. Pure random weights would only babble, so
:func:`shape_weights` fits the embeddings and one shared MLP to the bigrams of :data:`TEXT`
(the other blocks stay random, at reduced scale): the model answers in word-like fragments of its
training text, deterministically for a given seed and prompt. It knows nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Dict, Optional

#: Bump when the generated files change, so cached copies made by older code are not reused.
GENERATOR_VERSION = 2

#: Architecture of the tiny model (HunYuan-Large's feature set at toy scale).
CONFIG: Dict = {
    "architectures": ["HunYuanForCausalLM"],
    "model_type": "hunyuan",
    "hidden_size": 64,
    "intermediate_size": 128,  # shared MLP and every routed expert, as in HunYuan-Large
    "num_hidden_layers": 4,
    "num_attention_heads": 4,  # head_dim = 64 / 4 = 16
    "num_key_value_heads": 2,
    "attention_bias": False,
    "mlp_bias": False,
    "hidden_act": "silu",
    "num_experts": 4,
    "moe_topk": 1,
    "num_shared_expert": 1,
    "use_mixed_mlp_moe": True,
    "use_qk_norm": True,
    "use_cla": True,
    "cla_share_factor": 2,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "rope_scaling": {"type": "dynamic", "alpha": 1000.0, "factor": 1.0},
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
    "initializer_range": 0.02,
    "torch_dtype": "float32",
}

VOCAB_SIZE = 512
SPECIAL_TOKENS = ["<|bos|>", "<|eos|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|eos|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

#: Training text for the tokenizer (written for this project).
TEXT = """\
The zoo keeps models the way a library keeps books: each one has a card that says what it is,
where it came from and what it needs. A card names an architecture, and a plugin that knows the
architecture builds the model from shared parts. Attention, rotary position embeddings, mixtures
of experts and caches are written once and reused by every family that needs them.
Hello! Hello, world. How are you today? I am fine, thank you. What would you like to talk about?
Tell me a story about a small model that lived on a laptop. Once upon a time there was a model
with four layers and four experts. Every token it read went to one expert, and a shared expert
helped with everything. Two layers shared their keys and values, so the cache was half as large.
The model could not say much, but it always said the same thing when asked the same question.
Numbers help too: one, two, three, four, five, six, seven, eight, nine, ten. 1 2 3 4 5 6 7 8 9 0.
A mixture of experts sends each token to a few specialists instead of one large network. The
router scores every expert, keeps the best ones and mixes their answers by weight. Cross-layer
attention lets a layer borrow the keys and values of the layer before it. Rotary embeddings turn
positions into angles, and a larger base lets the model read longer texts.
Questions and answers: Where is the cache? In your home folder. Does it need the network? No.
Is it fast? It is small enough to be fast on any computer. Can I add my own cards? Yes, put them
in a folder and tell the zoo where it is.
def hello(name):
    return f"Hello, {name}!"
for i in range(10):
    print(hello("world"), i)
The quick brown fox jumps over the lazy dog. Sphinx of black quartz, judge my vow.
Good morning. Good evening. Good night. See you tomorrow. Thanks for reading.
"""


def config() -> Dict:
    """The tiny model's ``config.json`` contents (vocabulary fields filled in by :func:`generate`)."""
    return json.loads(json.dumps(CONFIG))


def build_tokenizer():
    """Train the byte-level BPE tokenizer on :data:`TEXT` (deterministic: same merges every run)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TEXT.splitlines(keepends=True), trainer=trainer)
    return tok


def make_weights(cfg: Dict, seed: int) -> Dict[str, "object"]:
    """Random float32 weights with HunYuan's Hugging Face parameter names, from ``seed``.

    Linear layers are drawn from N(0, 1/fan_in) so that every block changes the residual stream
    (a tiny init would leave the embeddings in charge and the model would only repeat its input).
    Norm weights are ones, as after initialisation.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = H // nh
    E = cfg["num_experts"]

    def linear(out_features, in_features):
        return (rng.standard_normal((out_features, in_features)) / np.sqrt(in_features)).astype(np.float32)

    def ones(n):
        return np.ones((n,), dtype=np.float32)

    w = {"model.embed_tokens.weight": rng.standard_normal((V, H)).astype(np.float32)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = ones(H)
        w[p + "post_attention_layernorm.weight"] = ones(H)
        w[p + "self_attn.q_proj.weight"] = linear(nh * hd, H)
        if not cfg["use_cla"] or i % cfg["cla_share_factor"] == 0:  # CLA: odd layers borrow K/V
            w[p + "self_attn.k_proj.weight"] = linear(nkv * hd, H)
            w[p + "self_attn.v_proj.weight"] = linear(nkv * hd, H)
        w[p + "self_attn.o_proj.weight"] = linear(H, nh * hd)
        w[p + "self_attn.query_layernorm.weight"] = ones(hd)
        w[p + "self_attn.key_layernorm.weight"] = ones(hd)
        w[p + "mlp.gate.wg.weight"] = linear(E, H)
        for name, (o, n) in (("gate_proj", (I, H)), ("up_proj", (I, H)), ("down_proj", (H, I))):
            w[p + f"mlp.shared_mlp.{name}.weight"] = linear(o, n)
        for e in range(E):
            for name, (o, n) in (("gate_proj", (I, H)), ("up_proj", (I, H)), ("down_proj", (H, I))):
                w[p + f"mlp.experts.{e}.{name}.weight"] = linear(o, n)
    w["model.norm.weight"] = ones(H)
    return w


#: How much the random blocks add to the residual stream next to the fitted bigram path.
BLOCK_SCALE = 0.3
FIT_STEPS = 60


def bigram_counts(tok):
    """Counts of token pairs in :data:`TEXT`, each line framed as ``<|assistant|> line <|eos|>``."""
    import numpy as np

    V = tok.get_vocab_size()
    assistant, eos = tok.token_to_id("<|assistant|>"), tok.token_to_id("<|eos|>")
    counts = np.zeros((V, V))
    for line in TEXT.splitlines(keepends=True):
        ids = [assistant] + tok.encode(line).ids + [eos]
        for a, b in zip(ids, ids[1:]):
            counts[a, b] += 1
    return counts


def _mm(a, b):
    """``a @ b`` in blocks of 16 rows.

    Small blocks keep OpenBLAS single-threaded: on a busy 2-core machine its threads for a
    477 x 64 x 477 product oversubscribe the cores and run 10x slower than one thread.
    """
    import numpy as np

    return np.concatenate([a[i : i + 16] @ b for i in range(0, a.shape[0], 16)])


def fit_bigram(counts, hidden: int, seed: int, steps: int = FIT_STEPS, progress=None):
    """Fit unit directions ``x̂`` (V × hidden-1) and a matrix ``P`` (hidden × hidden) so that
    ``softmax(ẽ_t P ẽ_s)`` over ``s`` approximates the bigram ``P(s | t)``, with ``ẽ = [1, x̂]``.

    Plain numpy Adam on the cross-entropy, a fixed number of steps from a seeded start, so the
    result is deterministic. Returns ``(x̂, P)``.
    """
    import numpy as np

    rng = np.random.default_rng(seed + 1)
    V = counts.shape[0]
    rows = counts.sum(1, keepdims=True)
    total = counts.sum()
    X = rng.standard_normal((V, hidden - 1))
    P = rng.standard_normal((hidden, hidden)) * 0.1
    m = [np.zeros_like(X), np.zeros_like(P)]
    v = [np.zeros_like(X), np.zeros_like(P)]
    lr, b1, b2 = 0.1, 0.9, 0.999
    for step in range(1, steps + 1):
        norm = np.linalg.norm(X, axis=1, keepdims=True)
        xh = X / norm
        E = np.concatenate([np.ones((V, 1)), xh], 1)
        Z = _mm(_mm(E, P), E.T)
        Z -= Z.max(1, keepdims=True)
        S = np.exp(Z)
        S /= S.sum(1, keepdims=True)
        G = (rows * S - counts) / total  # d(mean cross-entropy)/dZ
        GE = _mm(G, E)
        dP = _mm(E.T.copy(), GE) + 1e-4 * P
        dE = _mm(GE, P.T) + _mm(_mm(G.T.copy(), E), P)
        dxh = dE[:, 1:]
        dX = (dxh - xh * (xh * dxh).sum(1, keepdims=True)) / norm  # through the row normalisation
        for i, (param, grad) in enumerate(((X, dX), (P, dP))):
            m[i] = b1 * m[i] + (1 - b1) * grad
            v[i] = b2 * v[i] + (1 - b2) * grad * grad
            param -= lr * (m[i] / (1 - b1**step)) / (np.sqrt(v[i] / (1 - b2**step)) + 1e-8)
        if progress is not None and step % 10 == 0:
            progress(step, steps)
    return X / np.linalg.norm(X, axis=1, keepdims=True), P


def shape_weights(w: Dict, cfg: Dict, tok, seed: int, progress=None, counts=None, only_seen: bool = False) -> Dict:
    """Make the random model speak its training text's bigrams instead of noise.

    The mechanism uses only the architecture's own parts, so every block still runs:

    - every embedding row is ``s·[1, x̂_t]`` (same norm for all tokens), so after
      ``post_attention_layernorm`` coordinate 0 is the same constant for every token;
    - layer 0's shared MLP gates on that constant coordinate (``silu`` of a large constant is
      nearly linear), which turns its SwiGLU into the linear map ``A`` with
      ``s·ẽ_t + A·n_t = P^T ẽ_t``; with the tied head the logits are then ``∝ ẽ_t P ẽ_s``;
    - the final norm weight rescales the logits to the fitted scale;
    - every other block (attention, experts, the other shared MLPs) keeps random weights whose
      output is scaled by :data:`BLOCK_SCALE`, so they perturb but do not drown the bigram path.

    ``counts`` (V × V token-pair counts) defaults to :func:`bigram_counts` of ``tok`` on :data:`TEXT`.
    With ``only_seen`` the fit runs over the tokens that occur in ``counts`` only (the cost grows
    with V²); the others get the direction that scores lowest on average, so they are rarely drawn.
    """
    import numpy as np

    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    counts = bigram_counts(tok) if counts is None else np.array(counts, dtype=np.float64)
    keep = (counts.sum(0) + counts.sum(1) > 0) if only_seen else np.ones(V, dtype=bool)
    if only_seen:
        counts = counts[keep][:, keep]
    counts += 0.02 / counts.shape[0] * counts.sum(1, keepdims=True).clip(1)  # light smoothing
    fitted, P = fit_bigram(counts, H, seed, progress=progress)
    xh = np.empty((V, H - 1))
    xh[keep] = fitted
    if not keep.all():  # unseen tokens: minus the mean context direction
        mean = (np.concatenate([np.ones((len(fitted), 1)), fitted], 1) @ P)[:, 1:].mean(0)
        xh[~keep] = -mean / np.linalg.norm(mean)
    e = np.concatenate([np.ones((V, 1)), xh], 1)  # ẽ: [V, H]
    s = np.sqrt(H / 2.0)  # rms of every embedding row = 1
    c = np.sqrt(H / 2.0)  # RMSNorm(s·ẽ) = c·ẽ, since ||ẽ|| = sqrt(2)
    A = (P.T - s * np.eye(H)) / c
    gate_arg = 16.0  # silu(16) = 16 * (1 - 1.1e-7): linear to float32 precision
    silu = gate_arg / (1.0 + np.exp(-gate_arg))
    gate = np.zeros((I, H))
    gate[:H, 0] = gate_arg / c  # n_t[0] = c for every token
    up = np.zeros((I, H))
    up[:H] = A
    down = np.zeros((H, I))
    down[:, :H] = np.eye(H) / silu
    p = "model.layers.0.mlp.shared_mlp."
    w[p + "gate_proj.weight"], w[p + "up_proj.weight"], w[p + "down_proj.weight"] = gate, up, down
    w["model.embed_tokens.weight"] = s * e
    seen = counts.sum(1) > 1
    h_norm = np.median(np.linalg.norm(e[keep][seen] @ P, axis=1))  # ||P^T ẽ_t||
    w["model.norm.weight"] = np.full((H,), h_norm / (np.sqrt(H) * s))  # logits ≈ ẽ_t P ẽ_s
    for key in list(w):
        if key.endswith(("self_attn.o_proj.weight", "down_proj.weight")) and not key.startswith(p):
            w[key] = w[key] * BLOCK_SCALE
    return {k: np.asarray(v, dtype=np.float32) for k, v in w.items()}


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def generate(folder, seed: int = 0, progress: Optional[Callable[[int, int, str], None]] = None) -> Path:
    """Write the tiny checkpoint into ``folder`` (which must not exist yet) and return it.

    ``progress(done, total, what)`` is called after each step when given. The files are written
    to a temporary folder next to ``folder`` and renamed into place at the end (atomic on POSIX);
    if another process finished first, its folder is kept and ours is discarded.
    """
    from safetensors.numpy import save_file

    folder = Path(folder)
    if folder.exists():
        raise FileExistsError(f"{folder} already exists; remove it to generate hunyuan-tiny again")
    folder.parent.mkdir(parents=True, exist_ok=True)
    steps = ["tokenizer", "weights", "config"]
    report = progress or (lambda done, total, what: None)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        report(0, len(steps), "training tokenizer")
        tok = build_tokenizer()
        tok.save(str(tmp / "tokenizer.json"))
        vocab = tok.get_vocab_size()
        ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
        _write_json(
            tmp / "tokenizer_config.json",
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<|bos|>",
                "eos_token": "<|eos|>",
                "pad_token": "<|pad|>",
                "add_bos_token": False,
                "add_eos_token": False,
                "model_max_length": CONFIG["max_position_embeddings"],
                "clean_up_tokenization_spaces": False,
                "chat_template": CHAT_TEMPLATE,
            },
        )
        report(1, len(steps), "drawing and fitting weights")
        cfg = config()
        cfg.update(
            vocab_size=vocab,
            bos_token_id=ids["<|bos|>"],
            eos_token_id=ids["<|eos|>"],
            pad_token_id=ids["<|pad|>"],
        )
        weights = shape_weights(make_weights(cfg, seed), cfg, tok, seed, progress=lambda i, n: report(1 + i / n, len(steps), "fitting bigrams"))
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        report(2, len(steps), "writing config")
        _write_json(tmp / "config.json", cfg)
        _write_json(
            tmp / "generation_config.json",
            {"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"], "pad_token_id": cfg["pad_token_id"]},
        )
        _write_json(tmp / "zoo_generated.json", {"generator": "zoo_hunyuan.tiny:generate", "version": GENERATOR_VERSION, "seed": seed})
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / "config.json").is_file():  # not a concurrent winner: a real failure
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        report(3, len(steps), "done")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
