"""Golden logits from Tencent's own HunYuan code, for ``tests/test_hunyuan_tencent_oracle.py``.

Tencent's ``modeling_hunyuan.py`` / ``configuration_hunyuan.py`` are the reference for what a
HunYuan config means. They are not part of zoo (their licence is Tencent's, CI cannot reach
GitHub, and their cache code needs a transformers 4.5x release), so this script runs them in a
separate virtualenv and writes small golden files that the test suite compares zoo against.
Nothing of Tencent's code is copied here; the script imports it from a checkout.

Reference code used for the committed golden files:

- github.com/Tencent/Tencent-Hunyuan-Large @ cdc3735 (``models/``: ``HunYuanForCausalLM``;
  HunYuan-Large: top-1 gate, CLA)
- github.com/Tencent-Hunyuan/Hunyuan-A13B @ 2798f3c (``models/``: ``HunYuanMoEV1ForCausalLM``;
  list-form ``moe_topk`` / ``num_shared_expert``)
- transformers 4.53.3, torch 2.13.0 (CPU), numpy, safetensors

Regenerate (from the repository root; the checkouts' ``models/`` folders are imported as packages)::

    python -m venv /tmp/oracle-venv && . /tmp/oracle-venv/bin/activate
    pip install "transformers==4.53.3" "torch==2.13.0" numpy safetensors
    git clone https://github.com/Tencent/Tencent-Hunyuan-Large /tmp/large   # then: git -C /tmp/large checkout cdc3735
    git clone https://github.com/Tencent-Hunyuan/Hunyuan-A13B /tmp/a13b     # then: git -C /tmp/a13b checkout 2798f3c
    python tests/oracles/tencent_hunyuan.py --large /tmp/large --a13b /tmp/a13b --out tests/data/tencent_oracle

For every case in :data:`CASES` it writes ``tests/data/tencent_oracle/<case>/``:

- ``config.json``: the config as a user's checkpoint would carry it (what zoo reads; some cases
  omit keys on purpose, to test the defaults);
- ``tencent_config.json``: what Tencent's ``save_pretrained`` wrote (its resolved view);
- ``keys.json``: name and shape of every tensor in the ``model.safetensors`` that
  ``save_pretrained`` wrote (Tencent's layout: per-expert weights, no K/V in CLA layers, no
  ``lm_head`` when tied). The weights themselves are not stored: they are
  :func:`tests.oracles.seeded_weights.make_weights` of this key list and the case seed, and the
  script checks that the saved file holds exactly those values;
- ``logits.npz``: ``prompt`` (token ids) and ``logits`` ``[len(prompt), vocab]`` float32 from
  Tencent's model, decoding one token at a time with its KV cache (inference semantics: Tencent's
  A13B ``topkgating`` drops tokens over an expert capacity in a batched forward pass, never for a
  single token);
- ``meta.json``: versions, the seed, ``numpy_stream_sha256`` (:func:`stream_checksum`: the test
  checks it first, so a numpy whose ``default_rng`` stream changed reads as that, not as a parity
  failure), and how far Tencent's own batched pass is from its
  token-by-token decoding (non-zero where its capacity limit dropped tokens).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seeded_weights import make_weights, stream_checksum  # noqa: E402

ROPE = {"type": "dynamic", "alpha": 1000.0, "factor": 1.0}  # NTK-alpha, as every HunYuan release
PROMPT = [1, 17, 42, 5, 33, 8, 61, 2]
SMALL = dict(vocab_size=64, hidden_size=32, intermediate_size=40, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0, rope_scaling=ROPE,
             max_position_embeddings=64, attention_bias=False)
LARGE = dict(SMALL, architectures=["HunYuanForCausalLM"], model_type="hunyuan")


def a13b_scaled(a13b_config: dict, **changes) -> dict:
    """The real Hunyuan-A13B ``models/config.json`` with its sizes scaled down (every other key kept)."""
    cfg = dict(a13b_config)
    L = 4
    cfg.update(hidden_size=32, intermediate_size=24, num_hidden_layers=L, num_attention_heads=4, num_key_value_heads=2,
               attention_head_dim=8, num_experts=8, moe_topk=[3] * L, num_shared_expert=[1] * L,
               moe_intermediate_size=[24] * L, vocab_size=64, org_vocab_size=64, max_position_embeddings=64)
    for key in ("bos_token_id", "eos_token_id", "eod_token_id", "pad_token_id", "sep_token_id", "pad_id"):
        if isinstance(cfg.get(key), int) and cfg[key] >= 64:
            cfg[key] = 2  # token ids must fit the scaled-down vocabulary
    cfg.update(changes)
    return cfg


def cases(a13b_config: dict) -> dict:
    """name -> (reference repo, config.json, seed). Each case is one behaviour zoo must share with Tencent."""
    return {
        # HunYuan-Large: integer moe_topk 1 -> top1gating (raw probability), shared MLP, CLA pairs, tied.
        "large_top1_cla": ("large", dict(LARGE, num_experts=6, moe_topk=1, num_shared_expert=1, use_mixed_mlp_moe=True,
                                         use_qk_norm=True, use_cla=True, cla_share_factor=2, tie_word_embeddings=True), 1),
        # Large code with an integer top-k > 1 -> topkgating (renormalised); Large's capacity never drops.
        "large_top2": ("large", dict(LARGE, num_experts=6, moe_topk=2, num_shared_expert=1, use_mixed_mlp_moe=True,
                                     use_qk_norm=True, use_cla=False, tie_word_embeddings=True), 2),
        # Large's switches stated, tie_word_embeddings omitted: Tencent's class reads it as untied and
        # save_pretrained writes lm_head.weight next to embed_tokens.
        "large_tie_omitted": ("large", dict(LARGE, num_experts=6, moe_topk=1, num_shared_expert=1, use_mixed_mlp_moe=True,
                                            use_qk_norm=True, use_cla=True, cla_share_factor=2), 7),
        # A config that omits tie_word_embeddings and the other switches: Tencent's class reads it as
        # untied, no QK-norm, no shared MLP, no CLA, and save_pretrained writes a real lm_head.weight.
        "large_defaults_untied": ("large", dict(LARGE, num_experts=6, moe_topk=1), 3),
        # The real A13B config scaled down: list-form moe_topk / num_shared_expert, tied, no CLA.
        "a13b_scaled": ("a13b", a13b_scaled(a13b_config), 4),
        # moe_topk as a list of 1s: topkgating with k=1 renormalises the single weight to 1.
        "a13b_list_top1": ("a13b", a13b_scaled(a13b_config, moe_topk=[1] * 4), 5),
        # A13B code with CLA switched on (share factor 2) and list-form top-2.
        "a13b_cla": ("a13b", a13b_scaled(a13b_config, moe_topk=[2] * 4, use_cla=True, cla_share_factor=2), 6),
    }


def import_reference(root: Path, name: str):
    """Import ``<root>/models`` (Tencent's checkout) as package ``name``; returns (modeling, configuration)."""
    models = root / "models"
    spec = importlib.util.spec_from_file_location(name, models / "__init__.py", submodule_search_locations=[str(models)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return importlib.import_module(f"{name}.modeling_hunyuan"), importlib.import_module(f"{name}.configuration_hunyuan")


def commit_of(root: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def run_case(torch, modeling, configuration, class_name: str, config: dict, seed: int, out: Path) -> dict:
    from safetensors.numpy import load_file

    tencent_cfg = configuration.HunYuanConfig(**{k: v for k, v in config.items() if k not in ("architectures", "model_type")})
    model = getattr(modeling, class_name)(tencent_cfg).eval()
    params = model.state_dict()
    tied = bool(tencent_cfg.tie_word_embeddings)
    names = [k for k in params if not (tied and k == "lm_head.weight")]
    weights = make_weights([(k, tuple(params[k].shape)) for k in names], seed)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    if tied:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "lm_head is not tied"

    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        rows, past = [], None
        for t in range(len(PROMPT)):  # one token at a time, through Tencent's KV cache
            step = model(ids[:, t : t + 1], past_key_values=past, use_cache=True)
            past = step.past_key_values
            rows.append(step.logits[0, -1].float().numpy())
        logits = np.stack(rows)
        batched = model(ids, use_cache=False).logits[0].float().numpy()

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        saved = load_file(str(Path(tmp) / "model.safetensors"))
        saved_config = json.loads((Path(tmp) / "config.json").read_text())
    assert set(saved) == set(weights), sorted(set(saved) ^ set(weights))
    for k, v in saved.items():
        assert np.array_equal(v, weights[k]), f"{k}: save_pretrained wrote other values than the seeded ones"

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (out / "tencent_config.json").write_text(json.dumps(saved_config, indent=2, sort_keys=True) + "\n")
    (out / "keys.json").write_text("[\n" + ",\n".join(json.dumps([k, list(saved[k].shape)]) for k in sorted(saved)) + "\n]\n")
    np.savez_compressed(out / "logits.npz", prompt=np.array(PROMPT, dtype=np.int32), logits=logits.astype(np.float32))
    return {"seed": seed, "class": class_name, "batched_vs_decode_max_abs": float(np.abs(batched - logits).max())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--large", type=Path, required=True, help="checkout of github.com/Tencent/Tencent-Hunyuan-Large")
    ap.add_argument("--a13b", type=Path, required=True, help="checkout of github.com/Tencent-Hunyuan/Hunyuan-A13B")
    ap.add_argument("--out", type=Path, default=Path("tests/data/tencent_oracle"))
    args = ap.parse_args(argv)

    import torch
    import transformers

    torch.manual_seed(0)
    refs = {
        "large": (*import_reference(args.large, "tencent_hunyuan_large"), "HunYuanForCausalLM", args.large),
        "a13b": (*import_reference(args.a13b, "tencent_hunyuan_a13b"), "HunYuanMoEV1ForCausalLM", args.a13b),
    }
    a13b_config = json.loads((args.a13b / "models" / "config.json").read_text())
    for name, (ref, config, seed) in cases(a13b_config).items():
        modeling, configuration, class_name, root = refs[ref]
        meta = run_case(torch, modeling, configuration, class_name, config, seed, args.out / name)
        meta.update(reference=f"{'github.com/Tencent/Tencent-Hunyuan-Large' if ref == 'large' else 'github.com/Tencent-Hunyuan/Hunyuan-A13B'}"
                              f"@{commit_of(root)} models/modeling_hunyuan.py",
                    transformers=transformers.__version__, torch=torch.__version__, prompt=PROMPT,
                    numpy=np.__version__, numpy_stream_sha256=stream_checksum(seed))
        (args.out / name / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        print(f"{name}: {meta['class']} decode logits {len(PROMPT)}x{config['vocab_size']}, batched pass differs by {meta['batched_vs_decode_max_abs']:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
