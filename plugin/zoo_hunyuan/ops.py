"""HunYuan-specific sanitize op: the head-grouped fused ``qkv_proj`` of legacy Hunyuan-7B.

The fused weight has shape ``((nh + 2·nkv)·hd, H)`` with rows grouped per KV head: for each KV
head ``g`` the ``G = nh/nkv`` query heads that share it, then key head ``g``, then value head ``g``
(mlx-lm ``hunyuan.sanitize``; vLLM/sglang ``_split_qkv_weight``). A plain split into three blocks
would scramble the heads, hence this op. It works on ``.weight``, ``.bias`` and MLX-quantized
``.scales``/``.biases`` alike, since only the leading (row) axis is regrouped.
"""

from __future__ import annotations

from zoo_registry.sanitize import Op


def _groups(num_heads: int, num_kv_heads: int) -> int:
    if num_kv_heads <= 0 or num_heads % num_kv_heads:
        raise ValueError(f"num_heads {num_heads} is not a multiple of num_kv_heads {num_kv_heads}")
    return num_heads // num_kv_heads


class _GroupedQKV(Op):
    """Shared parameters of the split and its inverse: ``G = num_heads / num_kv_heads`` query heads per KV head."""

    params = ("num_heads", "num_kv_heads")

    def __init__(self, num_heads: int, num_kv_heads: int):
        super().__init__(num_heads=num_heads, num_kv_heads=num_kv_heads)
        self.num_heads, self.num_kv_heads = int(num_heads), int(num_kv_heads)
        self.G = _groups(self.num_heads, self.num_kv_heads)


class SplitGroupedQKV(_GroupedQKV):
    """``qkv_proj`` → ``q_proj``, ``k_proj``, ``v_proj`` (rows grouped per KV head)."""

    name = "split_grouped_qkv"

    def forward(self, xp, inputs, *, suffix=None):
        (w,) = inputs
        rows, rest = w.shape[0], list(w.shape[1:])
        per_kv = self.G + 2
        if rows % (self.num_kv_heads * per_kv):
            raise ValueError(
                f"qkv_proj has {rows} rows, not a multiple of num_kv_heads·(num_heads/num_kv_heads + 2) = {self.num_kv_heads * per_kv}"
            )
        hd = rows // (self.num_kv_heads * per_kv)
        w = xp.reshape(w, [self.num_kv_heads, per_kv, hd, *rest])  # (nkv, G+2, hd, ...)
        q, k, v = xp.split(w, [self.G, self.G + 1], axis=1)  # (nkv, G, hd, ...), (nkv, 1, hd, ...) x2
        return [xp.reshape(t, [-1, *rest]) for t in (q, k, v)]  # (nh·hd, ...), (nkv·hd, ...) x2

    def inverse(self):
        return MergeGroupedQKV(num_heads=self.num_heads, num_kv_heads=self.num_kv_heads)


class MergeGroupedQKV(_GroupedQKV):
    """``q_proj``, ``k_proj``, ``v_proj`` → head-grouped ``qkv_proj`` (inverse of the split)."""

    name = "merge_grouped_qkv"

    def forward(self, xp, inputs, *, suffix=None):
        q, k, v = inputs
        rest = list(q.shape[1:])
        if k.shape[0] % self.num_kv_heads:
            raise ValueError(f"k_proj has {k.shape[0]} rows, not a multiple of num_kv_heads {self.num_kv_heads}")
        hd = k.shape[0] // self.num_kv_heads
        q = xp.reshape(q, [self.num_kv_heads, self.G, hd, *rest])  # (nkv, G, hd, ...)
        k = xp.reshape(k, [self.num_kv_heads, 1, hd, *rest])  # (nkv, 1, hd, ...)
        v = xp.reshape(v, [self.num_kv_heads, 1, hd, *rest])
        return [xp.reshape(xp.concatenate([q, k, v], axis=1), [-1, *rest])]  # ((nh+2nkv)·hd, ...)

    def inverse(self):
        return SplitGroupedQKV(num_heads=self.num_heads, num_kv_heads=self.num_kv_heads)
