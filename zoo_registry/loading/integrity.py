"""Integrity checks around a load: size limit, finite values, and evaluation errors made readable.

- :func:`check_model_size`: a built model above ``ZOO_MAX_PARAMETERS`` is refused before anything
  is allocated;
- :func:`refuse_non_finite` / :func:`refuse_non_finite_parameters` (``check_finite``): NaN/inf in
  the checkpoint, or produced by a cast, quantization or FP8/GPTQ decoding, named by tensor;
- :func:`evaluate`: parameters evaluated one at a time, MLX's errors turned into
  :class:`~zoo_registry.errors.CheckpointError` naming the folder.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from ..checkpoint import Checkpoint
from ..errors import CheckpointError, ConfigError, ZooError


@contextmanager
def reading_weights(where):
    """Around evaluating lazily mapped weights: an error MLX raises while reading them (a damaged
    or changed weight file) becomes a :class:`CheckpointError` naming ``where``; zoo's own errors
    pass through."""
    try:
        yield
    except ZooError:
        raise
    except (RuntimeError, ValueError, OSError) as e:
        raise CheckpointError(f"{where}: reading the weights failed: {e}",
                              hint="a weight file is damaged or changed while loading; download or convert it again") from None


def evaluate(model, path: Path) -> None:
    """Evaluate the parameters; failures inside MLX become :class:`CheckpointError` naming ``path``.

    One parameter at a time: a parameter computed from checkpoint tensors (dequantized FP8,
    re-quantized with ``quantize``, stacked experts) then needs only its own sources in memory, so
    peak memory stays near the final model's size (benchmarks/quantized_releases.py: FP8 → MLX
    8-bit peaks at 1.5x the 8-bit model instead of 3x).
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten

    try:
        with reading_weights(path):
            for _, value in tree_flatten(model.parameters()):
                mx.eval(value)
    except MemoryError:
        raise CheckpointError(f"{path}: not enough memory to load the weights ({_model_bytes(model) / 2**30:.1f} GiB)",
                              hint="quantize (--quantize 4), pick a smaller model, or close other programs") from None


def _model_bytes(model) -> int:
    from mlx.utils import tree_flatten

    return sum(v.nbytes for _, v in tree_flatten(model.parameters()))


def check_model_size(model, path: Path) -> None:
    """Refuse a built model above the parameter limit before anything is evaluated (allocated).

    Plugins check their configs first (:func:`.configs.check_size`); this catches any architecture,
    including mlx-lm's, whose config made it that far (e.g. with ``strict=False``).
    """
    from mlx.utils import tree_flatten

    from ..configs import check_size

    count = sum(v.size for _, v in tree_flatten(model.parameters()))
    try:
        check_size(count, "$")
    except ConfigError as e:
        raise ConfigError(f"{path / 'config.json'}::{e}", hint=e.hint) from None


def refuse_non_finite(ckpt: Checkpoint) -> None:
    """Raise :class:`CheckpointError` if any floating-point tensor of ``ckpt`` holds NaN or inf."""
    found = ckpt.non_finite(limit=4)
    if found:
        more = f" (and {len(found) - 1} more tensor{'s' if len(found) > 2 else ''}{' at least' if len(found) == 4 else ''})" if len(found) > 1 else ""
        raise CheckpointError(
            found[0] + more,
            hint="the checkpoint is corrupt or was saved from a diverged run; download or convert it again "
            "(loading without --check-finite would use these values)",
        )


def refuse_non_finite_parameters(model, path: Path, dtype=None, quantize=None, converted=None) -> None:
    """After a cast or quantization: raise naming the first parameter that became NaN/inf."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from ..sanitize.tensors import is_floating

    for name, value in tree_flatten(model.parameters()):
        if is_floating(value.dtype) and not bool(mx.isfinite(value).all().item()):
            what = f"casting to {str(dtype).rsplit('.', 1)[-1]}" if dtype is not None else f"{quantize}-bit quantization"
            if converted is not None:
                raise CheckpointError(
                    f"{path}: parameter {name!r} holds NaN or inf after decoding the checkpoint's {converted.method.upper()} weights "
                    f"({'FP8 NaN bytes (S.1111.111) or ' if converted.method == 'fp8' else ''}scales out of range)",
                    hint="the checkpoint is corrupt; download it again (loading without --check-finite would use these values)",
                )
            raise CheckpointError(
                f"{path}: parameter {name!r} holds NaN or inf after {what} (the checkpoint's values are finite)",
                hint="its values do not fit the target dtype; load in bfloat16 or float32 instead",
            )
