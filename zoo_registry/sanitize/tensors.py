"""The array API sanitize ops are written against, with two backends.

- :data:`SHAPES` works on :class:`Spec` (shape + dtype, no data): the dry-run plan computes every
  target shape from the safetensors headers alone.
- :func:`mlx_backend` works on ``mlx.core.array``; every call builds a lazy graph node, so a
  memory-mapped checkpoint is read once, when the model's parameters are finally evaluated.

Both raise :class:`ValueError` for incompatible shapes; the engine turns that into a
:class:`~zoo_registry.errors.CheckpointError` naming the rule and tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

_ITEMSIZE = {
    "bool": 1, "uint8": 1, "int8": 1, "uint16": 2, "int16": 2, "float16": 2, "bfloat16": 2,
    "uint32": 4, "int32": 4, "float32": 4, "uint64": 8, "int64": 8, "float64": 8,
    "float8_e4m3": 1, "float8_e5m2": 1,
}


def dtype_name(dtype) -> str:
    """``mlx.core.bfloat16`` / ``"bfloat16"`` -> ``"bfloat16"``."""
    return str(dtype).rsplit(".", 1)[-1]


def is_floating(dtype) -> bool:
    name = dtype_name(dtype)
    return name.startswith("float") or name == "bfloat16"


@dataclass(frozen=True)
class Spec:
    """A tensor known only by its shape and dtype (from a safetensors header)."""

    shape: Tuple[int, ...]
    dtype: str

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * _ITEMSIZE.get(self.dtype, 4)

    def reshape(self, *shape):
        return SHAPES.reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (list, tuple)) else shape)


def _axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for a {ndim}-d tensor")
    return axis % ndim


class _ShapeBackend:
    """Shape arithmetic mirroring ``mlx.core`` semantics."""

    name = "shapes"

    def stack(self, xs: Sequence[Spec], axis: int = 0) -> Spec:
        first = xs[0]
        for x in xs[1:]:
            if x.shape != first.shape:
                raise ValueError(f"cannot stack tensors of shapes {list(first.shape)} and {list(x.shape)}")
        ax = _axis(axis, first.ndim + 1)
        return Spec(first.shape[:ax] + (len(xs),) + first.shape[ax:], first.dtype)

    def concatenate(self, xs: Sequence[Spec], axis: int = 0) -> Spec:
        first = xs[0]
        ax = _axis(axis, first.ndim)
        total = 0
        for x in xs:
            if x.ndim != first.ndim or x.shape[:ax] + x.shape[ax + 1:] != first.shape[:ax] + first.shape[ax + 1:]:
                raise ValueError(f"cannot concatenate shapes {list(first.shape)} and {list(x.shape)} along axis {axis}")
            total += x.shape[ax]
        return Spec(first.shape[:ax] + (total,) + first.shape[ax + 1:], first.dtype)

    def split(self, x: Spec, indices: Sequence[int], axis: int = 0) -> List[Spec]:
        ax = _axis(axis, x.ndim)
        bounds = [0, *indices, x.shape[ax]]
        out = []
        for a, b in zip(bounds, bounds[1:]):
            if not 0 <= a <= b <= x.shape[ax]:
                raise ValueError(f"split points {list(indices)} do not fit axis {axis} of size {x.shape[ax]}")
            out.append(Spec(x.shape[:ax] + (b - a,) + x.shape[ax + 1:], x.dtype))
        return out

    def reshape(self, x: Spec, shape: Sequence[int]) -> Spec:
        shape = list(shape)
        if shape.count(-1) > 1:
            raise ValueError("reshape allows at most one -1")
        known = math.prod(s for s in shape if s != -1)
        if -1 in shape:
            if known == 0 or x.size % known:
                raise ValueError(f"cannot reshape {list(x.shape)} into {shape}")
            shape[shape.index(-1)] = x.size // known
        if math.prod(shape) != x.size:
            raise ValueError(f"cannot reshape {list(x.shape)} ({x.size} elements) into {shape}")
        return Spec(tuple(shape), x.dtype)

    def transpose(self, x: Spec, axes: Sequence[int]) -> Spec:
        if sorted(a % x.ndim for a in axes) != list(range(x.ndim)) or len(axes) != x.ndim:
            raise ValueError(f"axes {list(axes)} are not a permutation for a {x.ndim}-d tensor")
        return Spec(tuple(x.shape[a] for a in axes), x.dtype)

    def astype(self, x: Spec, dtype: str) -> Spec:
        return Spec(x.shape, dtype_name(dtype))


SHAPES = _ShapeBackend()


class _MLXBackend:
    """Thin lazy wrappers over ``mlx.core`` (imported on first use)."""

    name = "mlx"

    def __init__(self):
        import mlx.core as mx

        self.mx = mx

    def stack(self, xs, axis: int = 0):
        return self.mx.stack(list(xs), axis=axis)

    def concatenate(self, xs, axis: int = 0):
        return self.mx.concatenate(list(xs), axis=axis)

    def split(self, x, indices, axis: int = 0):
        return list(self.mx.split(x, list(indices), axis=axis))

    def reshape(self, x, shape):
        return self.mx.reshape(x, list(shape))

    def transpose(self, x, axes):
        return self.mx.transpose(x, list(axes))

    def astype(self, x, dtype):
        return x.astype(getattr(self.mx, dtype_name(dtype)))


_MLX = None


def mlx_backend() -> _MLXBackend:
    global _MLX
    if _MLX is None:
        _MLX = _MLXBackend()
    return _MLX


def describe(x) -> Tuple[Tuple[int, ...], str]:
    """``(shape, dtype name)`` of an mx.array or a :class:`Spec`."""
    return tuple(x.shape), dtype_name(x.dtype)
