"""Whether a runtime component divides across ``N`` ranks, checked before any weight is touched.

:mod:`.sharding` runs these on every block first, so an impossible split raises
:class:`zoo_registry.errors.ConfigError` naming the layer, the size and the fix while the model is
still as it was. Tensor parallelism splits whole heads (attention) and the intermediate dimension
(MLPs, experts); on quantized layers a split input dimension must fall on quantization groups.
"""

from __future__ import annotations

from typing import Optional

from ..errors import ConfigError
from .attention import Attention
from .mlp import MLP
from .moe import MoE

MOE_STRATEGIES = ("auto", "tensor", "expert")


def _size(group) -> int:
    return 1 if group is None else group.size()


def _group_size(layer) -> Optional[int]:
    """Quantization group size of a (switch) linear layer, or ``None`` when it is not quantized."""
    return getattr(layer, "group_size", None) if "scales" in layer else None


def _in_dims(layer) -> int:
    """Unpacked input width of a (quantized, switch) linear layer."""
    if "scales" in layer:
        return layer.scales.shape[-1] * layer.group_size
    return layer.weight.shape[-1]


def _need(ok: bool, where: str, what: str, hint: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: {what}", hint=hint)


def _check_input_split(layer, N: int, where: str, name: str) -> None:
    """``layer``'s input columns split across ``N`` ranks must fall on quantization groups."""
    gs = _group_size(layer)
    d = _in_dims(layer)
    unit = N * (gs or 1)
    extra = f" x quantization group size {gs}" if gs else ""
    _need(
        d % unit == 0,
        where,
        f"{name} has {d} input columns, not divisible by {N} ranks{extra} (= {unit})",
        "use a number of ranks that divides it"
        + ("; or quantize with a smaller group size, or shard an unquantized checkpoint" if gs else ""),
    )


def check_attention(attn: Attention, N: int, where: str = "self_attn") -> None:
    """Raise :class:`ConfigError` unless ``attn``'s query and KV heads split evenly over ``N``."""
    _need(
        attn.n_heads % N == 0,
        where,
        f"{attn.n_heads} attention heads cannot be split across {N} ranks",
        "tensor parallelism splits whole heads; use a number of ranks that divides num_attention_heads",
    )
    _need(
        attn.n_kv_heads % N == 0,
        where,
        f"{attn.n_kv_heads} key/value heads cannot be split across {N} ranks",
        "KV heads are split, not replicated; use a number of ranks that divides num_key_value_heads",
    )
    _need(
        not (getattr(attn, "use_qk_norm", False) and getattr(attn, "qk_norm_scope", "head") == "projection"),
        where,
        "a QK-norm over the whole projection (qk_norm_scope='projection', OLMo 2) cannot be split across ranks",
        "its RMS spans every head, and tensor parallelism gives each rank only some heads; run this model in one process",
    )
    _check_input_split(attn.o_proj, N, where, "o_proj")


def check_mlp(mlp: MLP, N: int, where: str = "mlp") -> None:
    """Raise :class:`ConfigError` unless the MLP's intermediate dimension splits over ``N``."""
    hidden = mlp.gate_proj.weight.shape[0]
    _need(
        hidden % N == 0,
        where,
        f"intermediate size {hidden} cannot be split across {N} ranks",
        "use a number of ranks that divides the intermediate size",
    )
    _check_input_split(mlp.down_proj, N, where, "down_proj")


def _split_unit(glu_or_mlp) -> int:
    """Granularity of an intermediate-dimension split: the down projection's quantization group."""
    return _group_size(glu_or_mlp.down_proj) or 1


def _check_intermediate(block, N: int, where: str, what: str, hint: str) -> None:
    """An MoE-internal intermediate split needs at least one whole unit (group) per rank."""
    hidden = _in_dims(block.down_proj)
    unit = _split_unit(block)
    _need(
        hidden // unit >= N,
        where,
        f"{what} {hidden} cannot be split across {N} ranks"
        + (f" in whole quantization groups of {unit}" if unit > 1 else ""),
        hint,
    )


def _check_moe_tensor(moe: MoE, N: int, where: str) -> None:
    _check_intermediate(
        moe.switch_mlp, N, where, "expert intermediate size",
        "use fewer ranks, or strategy='expert'",
    )


def _check_moe_expert(moe: MoE, N: int, where: str) -> None:
    _need(
        moe.num_experts % N == 0,
        where,
        f"{moe.num_experts} experts cannot be split across {N} ranks",
        "use a number of ranks that divides num_experts, or strategy='tensor'",
    )


def choose_moe_strategy(moe: MoE, N: int, strategy: str = "auto", where: str = "mlp") -> str:
    """Resolve ``strategy`` for ``moe`` over ``N`` ranks, raising :class:`ConfigError` if it cannot split.

    ``"auto"`` picks ``"tensor"`` when the intermediate dimension divides and ``"expert"``
    otherwise. The shared MLP (split by its intermediate dimension under both) is checked too.
    """
    if strategy not in MOE_STRATEGIES:
        raise ConfigError(
            f"{where}: unknown MoE sharding strategy {strategy!r}",
            hint="expected one of " + ", ".join(MOE_STRATEGIES),
        )
    if "shared_mlp" in moe:
        _check_intermediate(moe.shared_mlp, N, where + ".shared_mlp", "intermediate size", "use fewer ranks")
    if strategy == "auto":
        try:
            _check_moe_tensor(moe, N, where)
            return "tensor"
        except ConfigError as tensor_error:
            try:
                _check_moe_expert(moe, N, where)
            except ConfigError as expert_error:
                raise ConfigError(
                    f"{tensor_error.message}; and {expert_error.message.split(': ', 1)[1]}",
                    hint="use a number of ranks that divides num_experts or moe_intermediate_size",
                ) from None
            return "expert"
    (_check_moe_tensor if strategy == "tensor" else _check_moe_expert)(moe, N, where)
    return strategy
