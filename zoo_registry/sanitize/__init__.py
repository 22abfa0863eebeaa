"""Checkpoint conversion as data: YAML rules, one engine, a load report.

A checkpoint on disk rarely uses the exact parameter names and shapes of the MLX module tree
(per-expert tensors vs stacked ``switch_mlp``, fused ``qkv_proj`` vs ``q/k/v_proj``, ...). Instead
of a hand-written ``sanitize()`` per model, an architecture ships a rule file
(``schemas/sanitize-rules.schema.json``) and :mod:`.engine` applies it:

- :mod:`.rules` parses and validates rule files (``load_rules(path)``);
- :mod:`.ops` holds the built-in operations (rename, drop, split, concatenate, stack, unstack,
  transpose, reshape); plugins add more through the ``register_sanitize_ops`` hook;
- :mod:`.tensors` gives operations one small array API over two backends: MLX arrays (loading)
  and shape-only :class:`~.tensors.Spec` objects (dry-run planning from safetensors headers);
- :mod:`.report` compares the result with the model's parameters (MISSING / UNEXPECTED /
  MISMATCHED, index ranges compressed) and remembers which rule produced each parameter.

The op interface
----------------
An operation is a subclass of :class:`Op`. The engine instantiates it once per rule with the
rule's parameters (config keys already resolved to numbers) and calls :meth:`Op.forward` once per
matched group of tensors::

    class Scale2(Op):
        '''Doubles a tensor (toy example).'''
        name = "scale2"

        def forward(self, xp, inputs, *, suffix=None):
            (x,) = inputs
            return [x * 2]

``xp`` is the backend (``stack``, ``concatenate``, ``split``, ``reshape``, ``transpose``); ops
must use it rather than ``mlx.core`` so the same code plans on shapes and converts real tensors.
``inputs`` are the source tensors in the order of the rule's ``from`` templates (for a rule with
``over``, all tensors of the group sorted by index); the op returns the target tensors in the order
of ``to``. ``suffix`` is the tensor kind being transformed (``weight``, ``scales``, ``biases``,
``bias``, or ``None`` for full tensor names): MLX-quantized tensors travel together, and an op that
cannot apply to packed weights raises :class:`~zoo_registry.errors.CheckpointError`.
:meth:`Op.inverse` returns the op undoing this one (used by ``zoo convert --to hf``) or ``None``.

This package imports no MLX: ``zoo validate`` loads rule files through it.
"""

from __future__ import annotations

from typing import List, Optional, Sequence


class Op:
    """Base class of sanitize operations (built-in or registered by a plugin).

    Subclasses set :attr:`name`, accept their parameters as keyword arguments in ``__init__``
    (raising :class:`ValueError` with a readable message for bad values), implement
    :meth:`forward` and, when the transformation can be undone, :meth:`inverse`.
    """

    name = "op"
    #: parameters the op accepts (besides the engine-level rule keys); used to reject typos
    params: Sequence[str] = ()

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise ValueError(f"op {self.name!r} takes no parameter {', '.join(map(repr, unknown))} (accepts: {', '.join(self.params) or 'none'})")
        self.kwargs = dict(params)

    def forward(self, xp, inputs: List, *, suffix: Optional[str] = None) -> List:
        """Map the source tensors to the target tensors (lazily: never evaluate)."""
        raise NotImplementedError

    def inverse(self) -> Optional["Op"]:
        """The op that maps the targets back to the sources, or ``None`` if there is none."""
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.name}({args})"


__all__ = ["Op"]
