"""The built-in sanitize operations.

Each is an :class:`~zoo_registry.sanitize.Op`; the rule file names it in ``op:``. Pairs that undo
each other: rename ↔ rename, split ↔ concatenate, stack ↔ unstack, transpose ↔ transpose.
``drop`` and ``reshape`` have no inverse (a dropped tensor is gone; a reshape forgets the shape
it came from).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Type

from . import Op


class Rename(Op):
    """One tensor under a new name (the engine does the naming; the data is untouched)."""

    name = "rename"

    def forward(self, xp, inputs, *, suffix=None):
        return list(inputs)

    def inverse(self):
        return Rename()


class Drop(Op):
    """Remove tensors the model has no parameter for (rotary buffers, a tied ``lm_head``)."""

    name = "drop"

    def forward(self, xp, inputs, *, suffix=None):
        return []


def _cuts(sizes: Sequence[int]) -> List[int]:
    out, total = [], 0
    for s in sizes[:-1]:
        total += s
        out.append(total)
    return out


class Split(Op):
    """One tensor into ``len(to)`` parts along ``axis``: equal parts, or the given ``sizes``."""

    name = "split"
    params = ("axis", "sizes", "parts")

    def __init__(self, axis: int = 0, sizes: Optional[Sequence[int]] = None, parts: Optional[int] = None):
        super().__init__(**{k: v for k, v in (("axis", axis), ("sizes", sizes), ("parts", parts)) if v is not None})
        self.axis = int(axis)
        self.sizes = [int(s) for s in sizes] if sizes is not None else None
        self.parts = int(parts) if parts is not None else (len(self.sizes) if self.sizes else None)
        if self.sizes is not None and any(s <= 0 for s in self.sizes):
            raise ValueError(f"split sizes must be positive, got {self.sizes}")

    def forward(self, xp, inputs, *, suffix=None):
        (x,) = inputs
        n = x.shape[self.axis] if -len(x.shape) <= self.axis < len(x.shape) else None
        if n is None:
            raise ValueError(f"axis {self.axis} is out of range for a tensor of shape {list(x.shape)}")
        if self.sizes is not None:
            if sum(self.sizes) != n:
                raise ValueError(f"split sizes {self.sizes} add up to {sum(self.sizes)}, but axis {self.axis} has size {n}")
            return xp.split(x, _cuts(self.sizes), axis=self.axis)
        parts = self.parts
        if not parts or n % parts:
            raise ValueError(f"axis {self.axis} of size {n} does not split into {parts} equal parts")
        step = n // parts
        return xp.split(x, [step * i for i in range(1, parts)], axis=self.axis)

    def inverse(self):
        return Concatenate(axis=self.axis)


class _AlongAxis(Op):
    """An op with one parameter, the ``axis`` it works along."""

    params = ("axis",)

    def __init__(self, axis: int = 0):
        super().__init__(axis=axis)
        self.axis = int(axis)


class Concatenate(_AlongAxis):
    """Several tensors into one along ``axis`` (in the order of ``from``)."""

    name = "concatenate"

    def forward(self, xp, inputs, *, suffix=None):
        return [xp.concatenate(inputs, axis=self.axis)]

    def inverse(self):
        return Split(axis=self.axis)  # equal parts; a rule with unequal parts gives ``sizes``


class Stack(_AlongAxis):
    """Tensors indexed by a placeholder (``over``) into one tensor with a new leading axis.

    This is the per-expert → ``switch_mlp`` conversion of MoE checkpoints. MLX builds the result
    lazily: the sources are read straight into the stacked buffer when it is evaluated.
    """

    name = "stack"

    def forward(self, xp, inputs, *, suffix=None):
        return [xp.stack(inputs, axis=self.axis)]

    def inverse(self):
        return Unstack(axis=self.axis)


class Unstack(_AlongAxis):
    """One tensor into one tensor per index along ``axis`` (the inverse of :class:`Stack`)."""

    name = "unstack"

    def forward(self, xp, inputs, *, suffix=None):
        (x,) = inputs
        n = x.shape[self.axis]
        parts = xp.split(x, list(range(1, n)), axis=self.axis)
        keep = [d for i, d in enumerate(x.shape) if i != self.axis % len(x.shape)]
        return [xp.reshape(p, keep) for p in parts]

    def inverse(self):
        return Stack(axis=self.axis)


def _refuse_quantized(suffix: Optional[str], message: str) -> None:
    """Layout ops move elements; an MLX-quantized tensor's packed words and scales cannot be moved so."""
    if suffix in ("scales", "biases"):
        raise ValueError(message)


class Transpose(Op):
    """Permute axes (e.g. checkpoints that store ``[in, out]`` instead of ``[out, in]``)."""

    name = "transpose"
    params = ("axes",)

    def __init__(self, axes: Sequence[int]):
        super().__init__(axes=list(axes))
        self.axes = [int(a) for a in axes]
        if sorted(self.axes) != list(range(len(self.axes))):
            raise ValueError(f"axes {self.axes} are not a permutation of 0..{len(self.axes) - 1}")

    def forward(self, xp, inputs, *, suffix=None):
        _refuse_quantized(suffix, "cannot transpose an MLX-quantized tensor; transpose before quantizing")
        return [xp.transpose(x, self.axes) for x in inputs]

    def inverse(self):
        inv = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inv[a] = i
        return Transpose(axes=inv)


class Reshape(Op):
    """Give a tensor a new shape with the same number of elements (one entry may be -1)."""

    name = "reshape"
    params = ("shape",)

    def __init__(self, shape: Sequence[int]):
        super().__init__(shape=list(shape))
        self.shape = [int(s) for s in shape]

    def forward(self, xp, inputs, *, suffix=None):
        _refuse_quantized(suffix, "cannot reshape an MLX-quantized tensor")
        return [xp.reshape(x, self.shape) for x in inputs]


BUILTIN: Dict[str, Type[Op]] = {
    cls.name: cls for cls in (Rename, Drop, Split, Concatenate, Stack, Unstack, Transpose, Reshape)
}


def _register_quantized() -> None:
    """FP8 and GPTQ conversions (:mod:`.quantized`): built-in, so every architecture's rules may use them."""
    from .quantized import OPS

    BUILTIN.update({cls.name: cls for cls in OPS})


_register_quantized()


def builtin_op(name: str) -> Optional[Type[Op]]:
    return BUILTIN.get(name)
