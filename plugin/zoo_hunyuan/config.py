"""Turn a schema-valid HunYuan ``config.json`` into the one form :mod:`zoo_hunyuan.model` builds from.

Runs after JSON Schema validation (structure, types, unknown keys) and checks what a schema cannot:
divisibility of heads, per-layer list lengths, ranges that depend on other keys. Every error is a
:class:`zoo_registry.ConfigError` whose message starts with the key path (``$.key: ...``);
``zoo_registry.configs`` prefixes the file name. It must not import MLX (``zoo validate`` runs it).

What the normalised config holds, whatever form the checkpoint used:

- ``rope_theta``: float, from the top level or from transformers-5 ``rope_parameters``.
- ``rope_scaling``: ``None`` (plain RoPE) or a mapping with ``type`` in ``linear`` / ``dynamic``
  (``dynamic`` with ``alpha`` > 0 is NTK-alpha RoPE; without ``alpha`` it is classic dynamic NTK).
  ``rope_parameters`` is folded in and removed; ``rope_type`` is accepted for ``type``.
- ``head_dim``: ``head_dim``, else ``attention_head_dim``, else ``hidden_size / num_attention_heads``.
- ``num_experts``, ``moe_topk``, ``num_shared_expert``, ``moe_intermediate_size``: lists with one
  entry per layer (scalars are broadcast; lists are checked against ``num_hidden_layers``).
- For keys a config may omit, the defaults of the model's reference implementation
  (:data:`DEFAULTS`): Tencent's ``HunYuanConfig`` for ``hunyuan`` (untied, no QK-norm, no shared
  MLP, no CLA), transformers' ``HunYuanMoEV1Config`` / ``HunYuanDenseV1Config`` for
  ``hunyuan_v1_*``. Each behaviour-changing key that was absent is listed under ``_zoo_notes``
  (shown by the load report), with the default taken.
- ``moe_renormalize``: whether the top-k routing weights are renormalised, decided from the
  *form* of ``moe_topk`` as Tencent's gate decides it (:func:`renormalizes`).

The parameter count the config describes (:func:`parameter_count`) is checked against zoo's
limit (:func:`zoo_registry.configs.check_size`) before any module is built, so a config asking
for 10^12 parameters is refused with the computed size instead of exhausting memory.

``normalize`` is idempotent: normalising its own output changes nothing.
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional

from zoo_registry.configs import check_size
from zoo_registry.errors import ConfigError

DENSE = "hunyuan_v1_dense"
ROPE_TYPES = ("default", "linear", "dynamic", "ntk_alpha")

# Defaults for keys a config may omit: those of the model's reference implementation, so a config
# means what it means to the code it was written for.
# - "hunyuan": Tencent's HunYuanConfig (configuration_hunyuan.py in github.com/Tencent/Tencent-Hunyuan-Large
#   and github.com/Tencent-Hunyuan/Hunyuan-A13B, models/): no QK-norm, no shared MLP, no CLA, untied.
# - "hunyuan_v1_moe" / "hunyuan_v1_dense": transformers' HunYuanMoEV1Config / HunYuanDenseV1Config,
#   whose models always apply QK-norm (and, for MoE, a shared MLP) and default to untied embeddings.
_COMMON = {
    "rms_norm_eps": 1e-5,
    "attention_bias": False,
    "use_cla": False,
    "cla_share_factor": 1,
    "num_experts": 1,
    "moe_topk": 1,
    "num_shared_expert": 1,
    "tie_word_embeddings": False,
}
DEFAULTS = {
    "hunyuan": {**_COMMON, "use_qk_norm": False, "use_mixed_mlp_moe": False},
    "hunyuan_v1_moe": {**_COMMON, "use_qk_norm": True, "use_mixed_mlp_moe": True},
    DENSE: {**_COMMON, "use_qk_norm": True, "use_mixed_mlp_moe": False},
}
REFERENCE = {
    "hunyuan": "Tencent's HunYuanConfig",
    "hunyuan_v1_moe": "transformers' HunYuanMoEV1Config",
    DENSE: "transformers' HunYuanDenseV1Config",
}
# Keys transformers' config classes do not have: its models are built one fixed way (QK-norm and a
# shared MLP always, no CLA), so their absence from a transformers config is no default worth noting.
FIXED_IN_TRANSFORMERS = ("use_qk_norm", "use_mixed_mlp_moe", "use_cla", "cla_share_factor", "num_shared_expert")
# Where the load report lists the defaults taken (zoo-internal key, kept by a second normalize).
NOTES_KEY = "_zoo_notes"
PER_LAYER = ("num_experts", "moe_topk", "num_shared_expert", "moe_intermediate_size")


def _positive_int(cfg: dict, key: str) -> int:
    if key not in cfg or cfg[key] is None:
        raise ConfigError(f"$.{key}: required key is missing")
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"$.{key}: expected a positive integer but got {value!r}")
    return value


def _per_layer(cfg: dict, key: str, n_layers: int, minimum: int) -> List[int]:
    value = cfg[key]
    values = value if isinstance(value, list) else [value] * n_layers
    if len(values) != n_layers:
        raise ConfigError(
            f"$.{key}: has {len(values)} entries but num_hidden_layers is {n_layers}",
            hint=f"give one value per layer, or a single integer for all layers",
        )
    for i, v in enumerate(values):
        where = f"$.{key}[{i}]" if isinstance(value, list) else f"$.{key}"
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ConfigError(f"{where}: expected an integer >= {minimum} but got {v!r}")
    return list(values)


def _resolve_head_dim(cfg: dict, hidden: int, heads: int) -> int:
    head_dim, attn_head_dim = cfg.get("head_dim"), cfg.get("attention_head_dim")
    if head_dim is not None and attn_head_dim is not None and head_dim != attn_head_dim:
        raise ConfigError(
            f"$.head_dim: {head_dim} disagrees with attention_head_dim {attn_head_dim}",
            hint="remove the wrong one; zoo reads head_dim, then attention_head_dim, then hidden_size / num_attention_heads",
        )
    for key, value in (("head_dim", head_dim), ("attention_head_dim", attn_head_dim)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"$.{key}: expected a positive integer but got {value!r}")
            return value
    if hidden % heads:
        raise ConfigError(
            f"$.hidden_size: {hidden} is not divisible by num_attention_heads {heads}",
            hint="set head_dim explicitly when the head width is not hidden_size / num_attention_heads",
        )
    return hidden // heads


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fold_rope(cfg: dict) -> None:
    """Fold ``rope_parameters`` / ``rope_theta`` / ``rope_scaling`` into ``rope_theta`` + ``rope_scaling``."""
    params = cfg.pop("rope_parameters", None)
    scaling = cfg.get("rope_scaling")
    theta = cfg.get("rope_theta")
    if params is not None:
        if not isinstance(params, dict):
            raise ConfigError(f"$.rope_parameters: expected an object but got {params!r}")
        p_theta = params.get("rope_theta")
        if p_theta is not None and theta is not None and float(p_theta) != float(theta):
            raise ConfigError(f"$.rope_parameters.rope_theta: {p_theta} disagrees with rope_theta {theta}", hint="remove one of them")
        theta = p_theta if p_theta is not None else theta
        p_scaling = {k: v for k, v in params.items() if k != "rope_theta"}
        if scaling is None:
            scaling, where = p_scaling, "$.rope_parameters"
        else:  # both given: rope_scaling is what older readers use; they must agree
            for key in ("alpha", "factor"):
                if key in p_scaling and key in scaling and p_scaling[key] != scaling[key]:
                    raise ConfigError(f"$.rope_parameters.{key}: {p_scaling[key]} disagrees with rope_scaling.{key} {scaling[key]}")
            where = "$.rope_scaling"
    else:
        where = "$.rope_scaling"
    theta = 10000.0 if theta is None else theta
    if not _number(theta) or theta <= 0:
        raise ConfigError(f"$.rope_theta: expected a number > 0 but got {theta!r}")
    cfg["rope_theta"] = float(theta)
    cfg["rope_scaling"] = _canonical_scaling(scaling, where, cfg)


def _canonical_scaling(scaling: Optional[dict], where: str, cfg: dict) -> Optional[dict]:
    if scaling is None:
        return None
    if not isinstance(scaling, dict):
        raise ConfigError(f"{where}: expected an object or null but got {scaling!r}")
    t, rt = scaling.get("type"), scaling.get("rope_type")
    if t is not None and rt is not None and t != rt:
        raise ConfigError(f"{where}.type: {t!r} disagrees with rope_type {rt!r}", hint="keep one of type / rope_type")
    rope_type = t if t is not None else rt if rt is not None else "default"
    if rope_type not in ROPE_TYPES:
        raise ConfigError(
            f"{where}.{'type' if t is not None else 'rope_type'}: unsupported RoPE type {rope_type!r}; "
            f"supported: {', '.join(ROPE_TYPES)}",
            hint="HunYuan checkpoints use type 'dynamic' with alpha 1000 (NTK-alpha RoPE)",
        )
    out = {k: v for k, v in scaling.items() if k not in ("type", "rope_type")}
    alpha, factor = out.get("alpha"), out.get("factor")
    if alpha is not None and (not _number(alpha) or alpha < 0):
        raise ConfigError(f"{where}.alpha: expected a number >= 0 (0 or null: no NTK-alpha) but got {alpha!r}")
    if factor is not None and (not _number(factor) or factor <= 0):
        raise ConfigError(f"{where}.factor: expected a number > 0 but got {factor!r}")
    if rope_type == "ntk_alpha":
        if not alpha:
            raise ConfigError(f"{where}.alpha: RoPE type 'ntk_alpha' needs an alpha > 0, got {alpha!r}")
        rope_type = "dynamic"
    if rope_type == "default":
        if alpha:  # an alpha with no type still means NTK-alpha in HunYuan's code
            rope_type = "dynamic"
        else:
            return None
    if rope_type == "linear" and factor is None:
        raise ConfigError(f"{where}.factor: linear RoPE scaling needs a factor")
    if rope_type == "dynamic" and not alpha:
        if factor is None:
            raise ConfigError(f"{where}.factor: dynamic NTK RoPE (no alpha) needs a factor")
        if not isinstance(cfg.get("max_position_embeddings"), int):
            raise ConfigError("$.max_position_embeddings: dynamic NTK RoPE (no alpha) needs max_position_embeddings")
    out["type"] = rope_type
    return out


def normalize(config: dict) -> dict:
    """Return the normalised copy of a HunYuan config, or raise :class:`ConfigError` (``$.key: ...``)."""
    cfg: Dict[str, Any] = dict(config)
    model_type = cfg.get("model_type")
    dense = model_type == DENSE
    defaults = DEFAULTS.get(model_type, DEFAULTS["hunyuan"])
    absent = [key for key in defaults if cfg.get(key) is None]
    for key in absent:
        cfg[key] = defaults[key]
    if cfg.get("rope_theta") is None and not (isinstance(cfg.get("rope_parameters"), dict) and "rope_theta" in cfg["rope_parameters"]):
        absent.append("rope_theta")
    if "moe_renormalize" not in cfg:
        cfg["moe_renormalize"] = renormalizes(model_type, config.get("moe_topk"))

    n_layers = _positive_int(cfg, "num_hidden_layers")
    hidden = _positive_int(cfg, "hidden_size")
    heads = _positive_int(cfg, "num_attention_heads")
    _positive_int(cfg, "vocab_size")
    intermediate = _positive_int(cfg, "intermediate_size")
    if cfg.get("num_key_value_heads") is None:
        cfg["num_key_value_heads"] = heads
    kv_heads = _positive_int(cfg, "num_key_value_heads")
    if heads % kv_heads:
        raise ConfigError(
            f"$.num_attention_heads: {heads} is not divisible by num_key_value_heads {kv_heads}",
            hint="each key/value head must serve a whole number of query heads",
        )
    cfg["head_dim"] = _resolve_head_dim(cfg, hidden, heads)
    _fold_rope(cfg)
    if cfg["head_dim"] <= 2 and cfg["rope_scaling"] and cfg["rope_scaling"]["type"] == "dynamic":
        raise ConfigError(f"$.head_dim: NTK RoPE needs head_dim > 2, got {cfg['head_dim']}")

    if dense:
        if cfg["use_cla"]:
            raise ConfigError("$.use_cla: hunyuan_v1_dense models have no cross-layer attention", hint="set use_cla to false")
        for key in ("num_experts", "moe_topk"):  # dense: one plain MLP per layer
            if cfg.get(key) not in (None, 1) and not (isinstance(cfg[key], list) and set(cfg[key]) <= {1}):
                raise ConfigError(f"$.{key}: hunyuan_v1_dense has no experts but {key} is {cfg[key]!r}", hint="use model_type 'hunyuan' for MoE checkpoints")

    if cfg.get("moe_intermediate_size") is None:
        cfg["moe_intermediate_size"] = intermediate
    experts = _per_layer(cfg, "num_experts", n_layers, 1)
    topk = _per_layer(cfg, "moe_topk", n_layers, 1)
    shared = _per_layer(cfg, "num_shared_expert", n_layers, 0)
    moe_inter = _per_layer(cfg, "moe_intermediate_size", n_layers, 1)
    for i, (e, k) in enumerate(zip(experts, topk)):
        if e > 1 and k > e:
            where = f"$.moe_topk[{i}]" if isinstance(config.get("moe_topk"), list) else "$.moe_topk"
            raise ConfigError(f"{where}: {k} experts per token but num_experts is {e}", hint="moe_topk must be <= num_experts")
    cfg.update(num_experts=experts, moe_topk=topk, num_shared_expert=shared, moe_intermediate_size=moe_inter)

    if cfg["use_cla"]:
        f = cfg["cla_share_factor"]
        if isinstance(f, bool) or not isinstance(f, int) or not 1 <= f <= n_layers:
            raise ConfigError(
                f"$.cla_share_factor: expected an integer in [1, num_hidden_layers={n_layers}] but got {f!r}",
                hint="with use_cla, layer i computes its own K/V iff i % cla_share_factor == 0",
            )
    check_size(parameter_count(cfg), "$", "hidden_size, intermediate_size, moe_intermediate_size, num_experts, num_hidden_layers and vocab_size")
    if NOTES_KEY not in cfg:
        cfg[NOTES_KEY] = default_notes(cfg, absent)
    return cfg


def renormalizes(model_type: Optional[str], moe_topk: Any) -> bool:
    """Whether the top-k routing weights are divided by their sum, as the reference code decides.

    Tencent's ``HunYuanTopKGate`` takes ``top1gating`` (the raw softmax probability, no
    renormalisation) iff ``moe_topk == 1``, i.e. only for the integer 1; a list (A13B's form, even
    ``[1, 1, ...]``) or an integer > 1 goes through ``topkgating``, which divides by the sum of the
    chosen probabilities. transformers' ``HunYuanMoEV1Gate`` always divides.
    """
    if model_type == "hunyuan_v1_moe":
        return True
    return isinstance(moe_topk, list) or (moe_topk is not None and moe_topk != 1)


def _moe(cfg: dict) -> bool:
    return any(e > 1 for e in cfg["num_experts"])


def default_notes(cfg: dict, absent: List[str]) -> List[str]:
    """One load-report line per behaviour-changing key the config omits, with the default taken."""
    model_type = cfg.get("model_type")
    ref = REFERENCE.get(model_type, REFERENCE["hunyuan"])
    moe_only = ("moe_topk", "num_shared_expert", "use_mixed_mlp_moe")
    notes = []
    for key in absent:
        if key in moe_only and not _moe(cfg):
            continue
        if key == "num_shared_expert" and not cfg["use_mixed_mlp_moe"]:
            continue
        if key == "cla_share_factor" and not cfg["use_cla"]:
            continue
        if model_type in ("hunyuan_v1_moe", DENSE) and key in FIXED_IN_TRANSFORMERS or model_type == DENSE and key == "num_experts":
            continue
        value = cfg[key]
        if key in PER_LAYER:
            value = value[0] if len(set(value)) == 1 else value
        if key == "tie_word_embeddings":
            why = f"{json.dumps(value)}, {ref}'s default: the LM head is {'embed_tokens' if value else 'its own lm_head.weight'}"
        else:
            why = f"{json.dumps(value)}, {ref}'s default"
        notes.append(f"the config omits {key}: took {why}")
    return notes


def parameter_count(cfg: dict) -> int:
    """Parameters the model built from the normalised ``cfg`` has (tied embeddings counted once).

    Mirrors :mod:`zoo_hunyuan.model` without building it: embeddings (+ untied head), per layer
    the attention projections (K/V only where the layer owns them under CLA), QK-norm and layer
    norms, then a dense SwiGLU MLP or routed experts + router + shared MLP.
    """
    D, V, L = cfg["hidden_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    H, KV, hd, inter = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"], cfg["intermediate_size"]
    bias = bool(cfg["attention_bias"])
    total = V * D * (1 if cfg["tie_word_embeddings"] else 2) + D  # embeddings (+ lm_head), final norm
    for i in range(L):
        total += 2 * (D * H * hd) + (H * hd + D if bias else 0)  # q_proj, o_proj
        if owns_kv(cfg, i):
            total += 2 * (D * KV * hd + (KV * hd if bias else 0))  # k_proj, v_proj
        total += (2 * hd if cfg["use_qk_norm"] else 0) + 2 * D  # query/key layernorm, the two RMSNorms
        experts = cfg["num_experts"][i]
        if experts == 1:
            total += 3 * D * inter
        else:
            total += experts * 3 * D * cfg["moe_intermediate_size"][i] + D * experts  # experts, router
            shared = cfg["num_shared_expert"][i]
            if cfg["use_mixed_mlp_moe"] and shared:
                total += 3 * D * inter * shared
    return total


def owns_kv(cfg: dict, layer: int) -> bool:
    """Whether ``layer`` projects its own K/V (CLA: only every ``cla_share_factor``-th layer does)."""
    return not cfg["use_cla"] or layer % cfg["cla_share_factor"] == 0
