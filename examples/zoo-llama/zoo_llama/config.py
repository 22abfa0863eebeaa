"""Cross-field checks and defaults for ``zoo_llama`` configs (runs after the JSON Schema).

The schema (``schemas/zoo_llama.config.schema.json``) has already checked structure, types and
unknown keys; this checks what a schema cannot and returns the one form :mod:`.model` builds from:

- ``num_key_value_heads`` (default: ``num_attention_heads``) divides ``num_attention_heads``;
- ``head_dim``: explicit, else ``hidden_size / num_attention_heads`` (which must divide);
- ``rope_theta`` + ``rope_scaling``: transformers-5 ``rope_parameters`` folded in; ``rope_scaling``
  is ``None`` (plain RoPE) or ``{"type": "linear" | "llama3", ...}``;
- ``attention_bias`` (all four projections, Llama) and ``qkv_bias`` (q/k/v only, Qwen2);
- no sliding-window attention (Qwen2's ``use_sliding_window``), which this plugin does not model.

Errors are :class:`zoo_registry.ConfigError` with a ``$.key`` path; zoo adds the file name.
No MLX import: ``zoo validate`` runs this.
"""

from zoo_registry import ConfigError

DEFAULTS = {
    "rms_norm_eps": 1e-6,  # transformers' LlamaConfig / Qwen2Config default
    "attention_bias": False,
    "qkv_bias": False,
    "mlp_bias": False,
    "tie_word_embeddings": False,  # transformers' default; Llama 3.2 1B/3B, SmolLM2 and small Qwen2 set true
}
ROPE_THETA = 10000.0
ROPE_TYPES = ("default", "linear", "llama3")


def _rope(cfg: dict) -> None:
    params = dict(cfg.pop("rope_parameters", None) or {})
    scaling = dict(cfg.get("rope_scaling") or {})
    theta = params.pop("rope_theta", None)
    if theta is not None and cfg.get("rope_theta") not in (None, theta):
        raise ConfigError(f"$.rope_parameters.rope_theta: {theta} disagrees with rope_theta {cfg['rope_theta']}", hint="remove one of them")
    for key, value in params.items():
        if key in scaling and scaling[key] != value:
            raise ConfigError(f"$.rope_parameters.{key}: {value!r} disagrees with rope_scaling.{key} {scaling[key]!r}")
        scaling[key] = value
    cfg["rope_theta"] = float(theta if theta is not None else cfg.get("rope_theta") or ROPE_THETA)
    kinds = {scaling.pop(k) for k in ("type", "rope_type") if k in scaling}
    if len(kinds) > 1:
        raise ConfigError(f"$.rope_scaling.type: {' and '.join(sorted(kinds))} disagree", hint="keep one of type / rope_type")
    kind = kinds.pop() if kinds else "default"
    if kind not in ROPE_TYPES:
        raise ConfigError(f"$.rope_scaling.rope_type: unsupported RoPE type {kind!r}; supported: {', '.join(ROPE_TYPES)}")
    if kind != "default" and "factor" not in scaling:
        raise ConfigError(f"$.rope_scaling.factor: {kind} RoPE scaling needs a factor")
    if kind == "llama3" and not scaling.get("high_freq_factor", 4.0) > scaling.get("low_freq_factor", 1.0):
        raise ConfigError("$.rope_scaling.high_freq_factor: must be greater than low_freq_factor")
    cfg["rope_scaling"] = None if kind == "default" else dict(scaling, type=kind)


def normalize(config: dict) -> dict:
    """Return the config :class:`zoo_llama.model.Model` is built from, or raise ``ConfigError``."""
    cfg = {**DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.setdefault("num_key_value_heads", heads)
    if heads % kv_heads:
        raise ConfigError(
            f"$.num_attention_heads: {heads} is not divisible by num_key_value_heads {kv_heads}",
            hint="each key/value head must serve a whole number of query heads",
        )
    if "head_dim" not in cfg:
        if cfg["hidden_size"] % heads:
            raise ConfigError(
                f"$.hidden_size: {cfg['hidden_size']} is not divisible by num_attention_heads {heads}",
                hint="set head_dim when the head width is not hidden_size / num_attention_heads",
            )
        cfg["head_dim"] = cfg["hidden_size"] // heads
    if cfg.get("use_sliding_window"):
        raise ConfigError("$.use_sliding_window: sliding-window attention is not supported by zoo_llama", hint="set it to false")
    odd = [t for t in cfg.get("layer_types") or [] if t != "full_attention"]
    if odd:
        raise ConfigError(f"$.layer_types: only 'full_attention' layers are supported, got {odd[0]!r}")
    _rope(cfg)
    return cfg
