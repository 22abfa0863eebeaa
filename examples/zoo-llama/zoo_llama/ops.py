"""A sanitize op for Llama checkpoints in Meta's original layout (``consolidated.safetensors``).

Meta's reference code (and Mistral's ``consolidated`` files) rotates *interleaved* pairs of each
query/key head, ``(x0, x1), (x2, x3), ...``; Hugging Face checkpoints, mlx-lm and zoo's runtime
rotate the two *halves*, ``(x_i, x_{i + d/2})``. transformers' conversion script therefore permutes
the rows of ``wq`` and ``wk`` once, per head; this op does the same, and its inverse undoes it.
No MLX import: ops use the backend ``xp`` so that ``zoo load --dry-run`` can plan on shapes.
"""

from zoo_registry.sanitize import Op


class InterleavedToHalves(Op):
    """Rows of a q/k projection: per head, ``[d/2 pairs, 2]`` order → ``[2 halves, d/2]`` order."""

    name = "interleaved_to_halves"
    params = ("num_heads",)

    def __init__(self, num_heads: int):
        super().__init__(num_heads=num_heads)
        if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
            raise ValueError(f"num_heads must be a positive integer, got {num_heads!r}")
        self.num_heads = num_heads

    def _permute(self, xp, x, pairs_first: bool):
        rows, rest = x.shape[0], list(x.shape[1:])
        if rows % (2 * self.num_heads):
            raise ValueError(f"{rows} rows do not split into {self.num_heads} heads of an even size")
        half = rows // self.num_heads // 2
        inner = [half, 2] if pairs_first else [2, half]
        x = xp.reshape(x, [self.num_heads, *inner, *rest])  # [heads, d/2, 2, ...] or [heads, 2, d/2, ...]
        x = xp.transpose(x, [0, 2, 1, *range(3, 3 + len(rest))])  # swap the two inner axes
        return xp.reshape(x, [rows, *rest])

    def forward(self, xp, inputs, *, suffix=None):
        (x,) = inputs
        return [self._permute(xp, x, pairs_first=True)]

    def inverse(self):
        return HalvesToInterleaved(self.num_heads)


class HalvesToInterleaved(InterleavedToHalves):
    """The inverse: half-split rows back to Meta's interleaved order (for writing that layout)."""

    name = "halves_to_interleaved"

    def forward(self, xp, inputs, *, suffix=None):
        (x,) = inputs
        return [self._permute(xp, x, pairs_first=False)]

    def inverse(self):
        return InterleavedToHalves(self.num_heads)
