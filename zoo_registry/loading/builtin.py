"""mlx-lm delegation: an architecture mlx-lm itself serves is built and loaded by mlx-lm.

:func:`load_builtin` calls ``mlx_lm.utils.load_model`` (mlx-lm's hand-written ``sanitize``
applies); :func:`build_mlx_lm` builds mlx-lm's model class over zoo's tensors (pickle weights,
and :func:`~zoo_registry.loading.plan`'s header-only dry run). The class is found by mlx-lm's
public model-module protocol (``mlx_lm.models.<model_type>`` exports ``Model`` and ``ModelArgs``,
after mlx-lm's public ``MODEL_ARCHITECTURE_REMAPPING`` / ``MODEL_REMAPPING`` tables), not by
mlx-lm's private ``_get_classes``. mlx-lm's own names live here and nowhere else in the loader.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Tuple

from ..checkpoint import Checkpoint
from ..errors import CheckpointError, CheckpointNotFoundError, ZooError
from .config import mx_dtype

#: mlx-lm's MoE router modules (``mlp.gate``; ``mlp.gate.wg`` in its ``hunyuan``), kept in full
#: precision when zoo quantizes one of mlx-lm's own models, as zoo always did.
MLX_LM_KEEP_FLOAT = ("mlp.gate.wg", "mlp.gate")


def builtin_keep_float(model) -> Tuple[str, ...]:
    """:data:`MLX_LM_KEEP_FLOAT` for a model whose class is mlx-lm's own, else ``()``."""
    return MLX_LM_KEEP_FLOAT if type(model).__module__.startswith("mlx_lm.models.") else ()


def mlx_lm_classes(config: dict):
    """``(Model, ModelArgs)`` of the mlx-lm module that serves ``config`` (``ValueError`` if none does)."""
    from mlx_lm import utils

    model_type = config["model_type"]
    architectures = config.get("architectures") or ()
    if isinstance(architectures, str):
        architectures = (architectures,)
    by_architecture = getattr(utils, "MODEL_ARCHITECTURE_REMAPPING", {})
    target = next((by_architecture[(model_type, a)] for a in architectures if (model_type, a) in by_architecture), None)
    target = target or getattr(utils, "MODEL_REMAPPING", {}).get(model_type, model_type)
    try:
        module = importlib.import_module(f"mlx_lm.models.{target}")
    except ImportError as e:
        raise ValueError(f"mlx-lm has no model module for model_type {model_type!r}") from e
    return module.Model, module.ModelArgs


def load_builtin(path: Path, strict: bool, overrides: dict, dtype):
    """mlx-lm's own architecture: reuse its loader and hand-written sanitize."""
    from mlx_lm.utils import load_model as mlx_load_model

    try:
        model, _ = mlx_load_model(path, lazy=True, strict=strict, model_config=overrides or None)
    except FileNotFoundError as e:
        raise CheckpointNotFoundError(f"{path}: {e}") from None
    except ValueError as e:
        raise CheckpointError(f"{path}: mlx-lm could not load the checkpoint: {e}") from None
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError) as e:  # mlx-lm's ModelArgs on a config it does not expect
        raise CheckpointError(f"{path}: mlx-lm could not load the checkpoint: {type(e).__name__}: {e}",
                              hint="mlx-lm does not validate configs; check config.json against the model's documentation") from None
    if dtype is not None:
        model.set_dtype(mx_dtype(dtype))
    return model


def build_mlx_lm(ckpt: Checkpoint, config: dict, name: str):
    """``(model, tensors)`` for an mlx-lm architecture: its own class and ``sanitize`` (which needs
    arrays; they stay lazy for safetensors) over the checkpoint's tensors."""
    try:
        model_class, args_class = mlx_lm_classes(config)
        model = model_class(args_class.from_dict(config))
        tensors = ckpt.tensors()
        if hasattr(model, "sanitize"):
            tensors = model.sanitize(tensors)
    except ZooError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, RuntimeError) as e:  # mlx-lm validates nothing
        raise CheckpointError(f"{ckpt.path}: mlx-lm could not build model_type {name!r} from config.json: {type(e).__name__}: {e}",
                              hint="mlx-lm does not validate configs; check config.json against the model's documentation") from None
    return model, tensors
