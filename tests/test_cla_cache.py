"""CLA-shared KV cache: a group's K/V stored once, against mlx-lm's hunyuan with its per-layer caches.

Every check runs zoo and mlx-lm on the same random weights and compares logits (mlx-lm keeps one
full cache per layer and applies each layer's key norm to the stored keys; zoo stores the
weight-free keys once per CLA group and folds the norm weight into the query), through mlx-lm's
own prompt-cache machinery: ``make_prompt_cache`` (plain and rotating), ``trim_prompt_cache``,
``save_prompt_cache`` / ``load_prompt_cache``, quantized KV caches (``kv_bits``) and batch
generation.
"""

import numpy as np
import pytest

import mlx.core as mx

from mlx_lm.models import hunyuan as mlx_hunyuan  # noqa: E402
from mlx_lm.models.cache import (  # noqa: E402
    KVCache,
    QuantizedKVCache,
    RotatingKVCache,
    load_prompt_cache,
    make_prompt_cache,
    save_prompt_cache,
    trim_prompt_cache,
)

from test_hunyuan_model import CONFIGS, ids, max_diff, random_weights, tiny_tokenizer  # noqa: E402
from zoo_hunyuan.model import build  # noqa: E402
from zoo_registry.runtime.cache import cache_nbytes  # noqa: E402

CLA = CONFIGS["cla_top1"]  # 4 layers, share factor 2: layers 0 and 2 own K/V, 1 and 3 reuse them
CLA3 = dict(CLA, num_hidden_layers=6, cla_share_factor=3)
WIDE_HEADS = dict(CLA, num_attention_heads=2, num_key_value_heads=1)  # head_dim 32: quantizable KV


def pair(cfg=CLA, seed=0):
    """(zoo model, mlx-lm model) holding the same random weights."""
    ref = mlx_hunyuan.Model(mlx_hunyuan.ModelArgs.from_dict(cfg))
    weights = random_weights(ref, seed)
    ref.load_weights(weights)
    model = build(cfg)
    model.load_weights(weights, strict=True)
    return model, ref


def decode(model, cache, x, prefill):
    """Logits of ``x`` fed as one prefill chunk of ``prefill`` tokens, then token by token."""
    out = [model(x[:, :prefill], cache=cache)]
    for t in range(prefill, x.shape[1]):
        out.append(model(x[:, t : t + 1], cache=cache))
    return mx.concatenate(out, axis=1)


@pytest.mark.parametrize("cfg", [CLA, CLA3], ids=["factor2", "factor3"])
def test_kv_bytes_at_most_one_over_share_factor(cfg):
    model, ref = pair(cfg)
    x = ids(B=2, L=40)
    caches = make_prompt_cache(model), make_prompt_cache(ref)
    assert max_diff(decode(model, caches[0], x, 30), decode(ref, caches[1], x, 30)) <= 1e-4
    zoo_bytes, ref_bytes = cache_nbytes(caches[0]), cache_nbytes(caches[1])
    factor = cfg["cla_share_factor"]
    assert zoo_bytes > 0 and zoo_bytes * factor == ref_bytes  # one K/V per group: exactly 1/factor of mlx-lm's
    for i, c in enumerate(caches[0]):
        owner = i % factor == 0
        assert (c.nbytes > 0) == owner  # consumers are zero-byte shadows
        assert c.offset == 40  # ... that still count positions like their owner


def test_parity_with_mlx_lm_without_cache_for_factor3():
    model, ref = pair(CLA3)
    x = ids()
    assert max_diff(model(x), ref(x)) <= 1e-4


def test_rotating_cache_from_max_kv_size_matches_mlx_lm():
    """``max_kv_size`` gives both models mlx-lm's RotatingKVCache; past the window they still agree."""
    model, ref = pair()
    x = ids(B=1, L=24)
    caches = make_prompt_cache(model, max_kv_size=10), make_prompt_cache(ref, max_kv_size=10)
    assert all(isinstance(c, RotatingKVCache) for c in caches[0])
    # a 12-token prompt already overflows the window, then 12 single steps rotate it
    assert max_diff(decode(model, caches[0], x, 12), decode(ref, caches[1], x, 12)) <= 1e-4
    assert cache_nbytes(caches[0]) > 0 and cache_nbytes(caches[0]) * 2 == cache_nbytes(caches[1])


def test_trim_then_continue_equals_full_forward():
    model, _ = pair()
    x = ids(B=1, L=12)
    cache = make_prompt_cache(model)
    model(x[:, :10], cache=cache)
    assert trim_prompt_cache(cache, 3) == 3
    assert {c.offset for c in cache} == {7}
    step = model(x[:, 7:8], cache=cache)
    assert max_diff(step[:, 0], model(x[:, :8])[:, -1]) <= 1e-4


def test_save_and_load_prompt_cache_round_trip(tmp_path):
    model, _ = pair()
    x = ids(B=1, L=14)
    cache = make_prompt_cache(model)
    model(x[:, :9], cache=cache)
    path = str(tmp_path / "prompt.safetensors")
    save_prompt_cache(path, cache, {"model": "cla"})
    loaded, meta = load_prompt_cache(path, return_metadata=True)
    assert meta == {"model": "cla"} and [type(c) for c in loaded] == [KVCache] * 4
    assert cache_nbytes(loaded) == cache_nbytes(cache)
    resumed = decode(model, loaded, x[:, 9:], 1)
    assert max_diff(resumed, decode(model, cache, x[:, 9:], 1)) <= 1e-6
    assert max_diff(resumed, model(x)[:, 9:]) <= 1e-4


def test_quantized_kv_cache_matches_mlx_lm_and_stays_shared():
    """``kv_bits``: mlx-lm's generate_step swaps every cache for a QuantizedKVCache; shadows follow."""
    from mlx_lm.generate import generate_step

    model, ref = pair(WIDE_HEADS)
    prompt = ids(B=1, L=9)[0]
    kw = dict(max_tokens=6, kv_bits=8, kv_group_size=32, quantized_kv_start=0)
    caches = make_prompt_cache(model), make_prompt_cache(ref)
    zoo = [(int(t), lp) for t, lp in generate_step(prompt, model, prompt_cache=caches[0], **kw)]
    mlx = [(int(t), lp) for t, lp in generate_step(prompt, ref, prompt_cache=caches[1], **kw)]
    assert all(isinstance(c, QuantizedKVCache) for c in caches[0])
    assert [t for t, _ in zoo] == [t for t, _ in mlx]
    # both quantize 8-bit (zoo the weight-free keys, mlx-lm the normed ones): close, not identical
    assert max(max_diff(a, b) for (_, a), (_, b) in zip(zoo, mlx)) <= 5e-2
    assert cache_nbytes(caches[0]) > 0 and cache_nbytes(caches[0]) * 2 == cache_nbytes(caches[1])
    assert [c.nbytes > 0 for c in caches[0]] == [True, False, True, False]


def test_batch_generate_matches_single_sequences():
    """mlx-lm's BatchGenerator merges, pads, filters and extracts the shadows like any cache."""
    from mlx_lm.generate import batch_generate, stream_generate

    model, ref = pair()
    tokenizer = tiny_tokenizer(CLA["vocab_size"])
    prompts = [[5, 6, 7, 8, 9], [10, 11, 12, 13, 14, 15, 16, 17]]
    out = batch_generate(model, tokenizer, prompts, max_tokens=4, return_prompt_caches=True, return_token_ids=True)
    assert len(out.token_ids) == len(out.caches) == len(prompts)  # zip() below would stop early on fewer
    for prompt, got, caches in zip(prompts, out.token_ids, out.caches):
        single = [r.token for r in stream_generate(ref, tokenizer, mx.array(prompt), max_tokens=4)]
        assert len(single) >= 1 and got == single  # (a prefix check would pass on an empty list)
        assert [c.nbytes > 0 for c in caches] == [True, False, True, False]
        assert len({c.offset for c in caches}) == 1


def test_batch_of_two_with_cache_matches_mlx_lm():
    model, ref = pair()
    x = ids(B=2, L=12)
    assert max_diff(decode(model, make_prompt_cache(model), x, 5), decode(ref, make_prompt_cache(ref), x, 5)) <= 1e-4
