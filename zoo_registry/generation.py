"""What `zoo load` reports about a loaded model, and the text generation behind `zoo generate`.

Model figures are computed from the model object itself, so they hold for any architecture that
follows mlx-lm's model protocol (a plugin's or mlx-lm's own):

- parameters: every array of ``model.parameters()`` once (a tied embedding counts once);
  quantized weights count the weights they stand for, not the packed ``uint32`` words;
- active parameters per token: routed-expert tensors (``switch_mlp`` / ``experts``, stacked with
  the expert axis first) count ``top_k / num_experts`` of their size, everything else in full,
  layer by layer (HunYuan-Large: shared MLP + 1 of 16 experts; arXiv:2411.02265, Sec. 2.1);
- KV-cache bytes per token: what the model's own caches store for one token (shapes of a lazy,
  never-evaluated one-token forward), so cross-layer attention counts only if the implementation
  really shares K/V (HunYuan-Large's CLA halves it; arXiv:2411.02265, Sec. 2.2).

Generation itself (prompt rendering with the thinking switch, the checkpoint's sampling defaults,
mlx-lm's ``stream_generate``, the reasoning/answer split) lives in :mod:`zoo_registry.chat`; this
module keeps :func:`build_prompt` and the statistics printed after the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional

from .chat.stats import GenerationStats  # noqa: F401 - re-exported: its home before chat/ existed

_EXPERT = re.compile(r"(^|\.)(switch_mlp|experts)\.")
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


@dataclass
class ModelStats:
    """Sizes of a loaded model (see the module docstring for how each is counted)."""

    parameters: int
    active_parameters: int
    parameter_bytes: int
    dtype: str
    dtypes: Dict[str, int] = field(default_factory=dict)  # dtype -> parameters stored in it
    kv_bytes_per_token: Optional[int] = None
    kv_caches: Optional[int] = None  # caches that store K/V (fewer than layers when CLA shares them)
    layers: Optional[int] = None
    quantization: Optional[dict] = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def evaluate_with_progress(model, title: str = "zoo: reading weights", delay: float = 1.0) -> float:
    """Evaluate a lazily loaded model layer by layer, with a progress bar; return the seconds.

    (Formerly ``evaluate_parameters``, a name :mod:`zoo_registry.distributed` also uses for its
    one-tensor-at-a-time evaluation; the old name still imports, with a ``DeprecationWarning``.)

    ``mx.load`` maps safetensors lazily, so for a large checkpoint this is where the bytes are
    read (and experts stacked, weights quantized). The bar appears only if it takes longer than
    ``delay`` seconds.
    """
    import time

    import mlx.core as mx

    from .progress import Progress

    layers = list(getattr(model, "layers", []) or [])
    start = time.perf_counter()
    with Progress(title, total=len(layers) + 1, unit=" layers", delay=delay) as bar:
        for i, layer in enumerate(layers):
            mx.eval(layer.parameters())
            bar.callback(i + 1)
        mx.eval(model.parameters())  # embeddings, final norm, head
        bar.callback(len(layers) + 1)
    return time.perf_counter() - start


def __getattr__(name: str):
    if name == "evaluate_parameters":
        import warnings

        warnings.warn("zoo_registry.generation.evaluate_parameters is renamed evaluate_with_progress", DeprecationWarning, stacklevel=2)
        return evaluate_with_progress
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _modules_by_name(model) -> Dict[str, Any]:
    return {name: module for name, module in model.named_modules()}


def _top_k(module, config: Optional[dict], layer: Optional[int]) -> Optional[int]:
    for attr in ("top_k", "num_experts_per_tok", "k"):
        value = getattr(module, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    if config:
        for key in ("moe_topk", "num_experts_per_tok", "top_k"):
            value = config.get(key)
            if isinstance(value, list) and layer is not None and layer < len(value):
                value = value[layer]
            if isinstance(value, int) and value > 0:
                return value
    return None


def _per_layer(value, layer):
    if isinstance(value, list):
        return value[layer] if layer is not None and layer < len(value) else None
    return value if isinstance(value, int) else None


def model_stats(model, config: Optional[dict] = None) -> ModelStats:
    """Count parameters (total, active per token), their bytes and the KV cache per token."""
    from mlx.utils import tree_flatten

    modules = _modules_by_name(model)
    total = active = nbytes = 0
    dtypes: Dict[str, int] = {}
    quant = None
    for key, array in tree_flatten(model.parameters()):
        nbytes += array.nbytes
        parent_name, _, leaf = key.rpartition(".")
        parent = modules.get(parent_name)
        bits = getattr(parent, "bits", None)
        dtype = str(array.dtype).replace("mlx.core.", "")
        count = array.size
        if isinstance(bits, int) and getattr(parent, "group_size", None):
            if leaf in ("scales", "biases"):
                continue  # quantization bookkeeping, not model parameters
            if leaf == "weight":
                count, dtype = array.size * 32 // bits, f"{bits}-bit"
                quant = quant or {"bits": bits, "group_size": parent.group_size}
        dtypes[dtype] = dtypes.get(dtype, 0) + count
        total += count
        match = _EXPERT.search(key)
        if match and array.ndim >= 1:
            layer_match = _LAYER.search(key)
            layer = int(layer_match.group(1)) if layer_match else None
            moe = modules.get(key[: match.start()])
            k = _top_k(moe, config, layer)
            if key[match.end():].split(".")[0].isdigit():  # one module per expert: experts.{e}.*
                experts = getattr(moe, "num_experts", None) or _per_layer((config or {}).get("num_experts"), layer)
            else:  # stacked (SwitchGLU): the expert axis is the first
                experts = array.shape[0]
            if k and experts and experts > 1:
                active += count * k // experts
                continue
        active += count
    floats = {k: v for k, v in dtypes.items() if k in ("float32", "float16", "bfloat16")}
    main = max(floats, key=floats.get) if floats else (max(dtypes, key=dtypes.get) if dtypes else "?")
    stats = ModelStats(total, active, nbytes, main, dtypes, quantization=quant)
    stats.layers = len(getattr(model, "layers", []) or [])
    _add_kv(model, stats, config)
    return stats


def _add_kv(model, stats: ModelStats, config: Optional[dict]) -> None:
    """KV-cache bytes per token, weighed in the model's own caches after one (unevaluated) token.

    MLX is lazy: calling the model on one token with a fresh prompt cache only builds the graph,
    yet every cache then holds arrays of their final shapes, so their sizes are known without
    computing anything. This counts what each implementation really stores: a model that keeps
    a full cache per CLA layer (mlx-lm, Tencent's code) counts every layer, one that stores a
    group's K/V once (zoo's CLA shadows) counts the owners only. Falls back to
    ``2 × kv_heads × head_dim × itemsize`` per distinct cache when the model cannot be probed.
    """
    try:
        import mlx.core as mx
        from mlx_lm.models.cache import make_prompt_cache

        caches = make_prompt_cache(model)
    except Exception:  # noqa: BLE001 - a model without the cache protocol: leave it unknown
        return
    try:
        model(mx.array([[0]]), cache=caches)
        per_token, storing, seen = 0, 0, set()
        for cache in caches:
            if id(cache) in seen or not hasattr(cache, "keys_and_values"):
                continue
            seen.add(id(cache))
            keys, values = cache.keys_and_values()
            size = sum(a.nbytes for a in _leaves(keys) + _leaves(values))
            per_token += size
            storing += size > 0
        stats.kv_bytes_per_token, stats.kv_caches = per_token, storing
        return
    except Exception:  # noqa: BLE001 - fall back to the formula below
        pass
    _kv_formula(model, stats, config, caches)


def _leaves(x):
    return [a for item in x for a in _leaves(item)] if isinstance(x, (tuple, list)) else ([] if x is None else [x])


def _kv_formula(model, stats: ModelStats, config: Optional[dict], caches) -> None:
    layers = list(getattr(model, "layers", []) or [])
    itemsize = _itemsize(stats.dtype)
    seen, per_token = set(), 0
    for i, cache in enumerate(caches):
        if id(cache) in seen:
            continue
        seen.add(id(cache))
        if not hasattr(cache, "keys"):
            continue  # recurrent state (Mamba-like): not per token
        attn = getattr(layers[i], "self_attn", None) if i < len(layers) else None
        kv_heads = getattr(attn, "n_kv_heads", None) or (config or {}).get("num_key_value_heads")
        head_dim = getattr(attn, "head_dim", None) or (config or {}).get("head_dim")
        if head_dim is None and config and config.get("hidden_size") and config.get("num_attention_heads"):
            head_dim = config["hidden_size"] // config["num_attention_heads"]
        if not (kv_heads and head_dim):
            return
        per_token += 2 * kv_heads * head_dim * itemsize
    stats.kv_bytes_per_token = per_token
    stats.kv_caches = len(seen)


def _itemsize(dtype: str) -> int:
    return {"float32": 4, "float16": 2, "bfloat16": 2}.get(dtype, 2)


def human_bytes(n: Optional[float]) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000.0
    return f"{n:.2f} TB"


def human_count(n: Optional[int]) -> str:
    if n is None:
        return "?"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


# -- generation --------------------------------------------------------------------------------
def build_prompt(tokenizer, prompt: str, *, chat_template: bool = True, system: Optional[str] = None,
                 enable_thinking: Optional[bool] = None) -> List[int]:
    """Token ids for ``prompt``: through the tokenizer's chat template when it has one.

    See :func:`zoo_registry.chat.render` (the thinking switch, and why the template is rendered
    by the transformers tokenizer rather than mlx-lm's wrapper).
    """
    from .chat.prompt import render

    return render(tokenizer, prompt, system=system, chat_template=chat_template, enable_thinking=enable_thinking).ids


def stream(model, tokenizer, prompt_ids: List[int], *, max_tokens: int = 256, temp: float = 0.0, top_p: float = 1.0,
           top_k: int = 0, min_p: float = 0.0, repetition_penalty: Optional[float] = None,
           stats: Optional[GenerationStats] = None) -> Iterator[str]:
    """Deprecated: use :class:`zoo_registry.chat.TextGenerator` or :func:`zoo_registry.chat.stream_events`.

    Yields the raw text pieces, unparsed, as before (``temp == 0`` is greedy).
    """
    import warnings

    from .chat import PLAIN, Sampling, stream_events

    warnings.warn("zoo_registry.generation.stream is deprecated; use zoo_registry.chat.TextGenerator.stream or "
                  "zoo_registry.chat.stream_events", DeprecationWarning, stacklevel=2)
    sampling = Sampling(temp, top_p, top_k, min_p, repetition_penalty)
    for event in stream_events(model, tokenizer, prompt_ids, splitter=PLAIN.splitter(), sampling=sampling,
                               max_tokens=max_tokens, stats=stats):
        yield event.text
