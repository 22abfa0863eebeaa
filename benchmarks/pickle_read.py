"""Reading a PyTorch pickle with zoo's restricted reader, side by side with its safetensors twin.

One ``torch.save`` file of bf16 tensors (``--mib`` MiB) and the same tensors as safetensors. Each
reader runs in a fresh process and evaluates every tensor into MLX memory; the table shows the
wall time, MLX's peak memory and the process's peak resident set (which also counts the pages of
the memory-mapped file), each relative to the file size. Reference: ``mx.load`` of safetensors,
and ``torch.load(mmap=True, weights_only=True)`` followed by a copy into MLX.

``--convert`` measures ``zoo convert`` instead: a llama checkpoint (mlx-lm's own architecture) in
``--shards`` pickle shards, converted to safetensors with ``--allow-pickle-weights`` (each shard
staged as safetensors, then mapped lazily), next to the same conversion from its safetensors twin
and to a plain load of the pickles (every tensor copied into memory). MLX peak memory is shown
relative to the largest shard and to the whole checkpoint.

``--hunyuan`` loads a HunYuan MoE (8 experts per layer, HF per-expert layout, stacked by the
sanitize rules on load) from one ``pytorch_model.bin`` and from its safetensors twin, and shows
MLX's peak memory relative to the checkpoint.

    nice python benchmarks/pickle_read.py --mib 1024
    nice python benchmarks/pickle_read.py --convert --shards 8
    nice python benchmarks/pickle_read.py --hunyuan
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import mlx.core as mx
kind, path = sys.argv[1], sys.argv[2]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
if kind == "zoo":
    from zoo_registry.torch_pickle import TorchFile
    out = TorchFile(path).tensors()
elif kind == "safetensors":
    out = mx.load(path)
else:
    import torch
    sd = torch.load(path, mmap=True, weights_only=True)
    out = {k: mx.array(v.view(torch.uint16).numpy()).view(mx.bfloat16) for k, v in sd.items()}
mx.eval(list(out.values()))
seconds = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "mlx_peak": mx.get_peak_memory(), "rss_growth": (rss - base) * 1024}))
"""


CONVERT_CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import mlx.core as mx
from zoo_registry.convert import convert
from zoo_registry.loading import load_model
kind, src, dst = sys.argv[1:4]
t = time.perf_counter()
if kind == "load":
    m = load_model(src, allow_pickle_weights=True)
else:
    convert(src, dst, allow_pickle_weights=(kind == "pickle"), shard_bytes=48 * 2**20)  # output shards smaller than the input ones
print(json.dumps({"seconds": time.perf_counter() - t, "mlx_peak": mx.get_peak_memory()}))
"""


def bench_convert(shards: int) -> None:
    import shutil

    import mlx.core as mx
    import torch
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    config = {"model_type": "llama", "hidden_size": 1024, "num_hidden_layers": 8, "intermediate_size": 4096,
              "num_attention_heads": 16, "num_key_value_heads": 4, "rms_norm_eps": 1e-5, "vocab_size": 32000,
              "tie_word_embeddings": False}
    model = llama.Model(llama.ModelArgs.from_dict(config))
    model.set_dtype(mx.bfloat16)
    weights = dict(tree_flatten(model.parameters()))
    with tempfile.TemporaryDirectory() as d:
        pk, st = Path(d) / "pickles", Path(d) / "safetensors"
        pk.mkdir()
        st.mkdir()
        for folder in (pk, st):
            (folder / "config.json").write_text(json.dumps(config))
        names = sorted(weights)
        weight_map = {}
        for i in range(shards):
            part = {k: weights[k] for k in names[i::shards]}
            torch.save({k: torch.from_numpy(__import__("numpy").array(v.view(mx.uint16))).view(torch.bfloat16) for k, v in part.items()},
                       pk / f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin")
            mx.save_safetensors(str(st / f"model-{i + 1:05d}-of-{shards:05d}.safetensors"), part)
            weight_map.update({k: f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for k in part})
        (st / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
        del weights, model
        sizes = [f.stat().st_size for f in pk.glob("*.bin")]
        print(f"checkpoint: {sum(sizes) / 2**20:.0f} MiB in {shards} shards (largest {max(sizes) / 2**20:.0f} MiB)")
        print(f"{'run':<40}{'seconds':>9}{'MLX peak / shard':>18}{'MLX peak / model':>18}")
        for kind, label, src in (("pickle", "zoo convert --allow-pickle-weights", pk), ("safetensors", "zoo convert (safetensors twin)", st),
                                 ("load", "load_model(allow_pickle_weights=True)", pk)):
            out = Path(d) / f"out-{kind}"
            proc = subprocess.run([sys.executable, "-c", CONVERT_CHILD, kind, str(src), str(out)], capture_output=True, text=True, check=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{label:<40}{r['seconds']:>9.2f}{r['mlx_peak'] / max(sizes):>18.2f}{r['mlx_peak'] / sum(sizes):>18.2f}")
            shutil.rmtree(out, ignore_errors=True)


HUNYUAN_CHILD = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import mlx.core as mx
from zoo_registry.loading import load_model
load_model(sys.argv[1], allow_pickle_weights=True)
print(json.dumps({"mlx_peak": mx.get_peak_memory()}))
"""


def bench_hunyuan() -> None:
    import mlx.core as mx
    import torch
    from mlx.utils import tree_flatten
    from safetensors.torch import load_file

    from zoo_registry.configs import validate_config
    from zoo_registry.resources import import_target

    config = {"model_type": "hunyuan", "vocab_size": 4096, "hidden_size": 512, "num_hidden_layers": 4, "intermediate_size": 1024,
              "num_attention_heads": 8, "num_key_value_heads": 4, "moe_topk": 1, "num_experts": 8, "num_shared_expert": 1,
              "use_mixed_mlp_moe": True, "use_qk_norm": True, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "use_cla": True,
              "cla_share_factor": 2, "tie_word_embeddings": True, "attention_bias": False,
              "rope_scaling": {"alpha": 1000.0, "factor": 1.0, "type": "dynamic"}}
    arch, cfg = validate_config(dict(config))
    model = import_target(arch.model)(cfg)
    weights = {}
    for k, v in tree_flatten(model.parameters()):  # HF layout: one tensor per expert
        v = mx.random.normal(v.shape) * 0.02
        if ".mlp.switch_mlp." in k:
            weights.update({k.replace(".switch_mlp.", f".experts.{e}."): v[e] for e in range(v.shape[0])})
        else:
            weights[k] = v
    with tempfile.TemporaryDirectory() as d:
        st, pk = Path(d) / "safetensors", Path(d) / "pickles"
        for folder in (st, pk):
            folder.mkdir()
            (folder / "config.json").write_text(json.dumps(config))
        mx.save_safetensors(str(st / "model.safetensors"), weights)
        torch.save(load_file(str(st / "model.safetensors")), pk / "pytorch_model.bin")
        size = (st / "model.safetensors").stat().st_size
        print(f"HunYuan checkpoint: {size / 2**20:.0f} MiB, {len(weights)} tensors")
        for label, folder in (("load_model, pytorch_model.bin", pk), ("load_model, model.safetensors", st)):
            proc = subprocess.run([sys.executable, "-c", HUNYUAN_CHILD, str(folder)], capture_output=True, text=True, check=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{label:<34} MLX peak {r['mlx_peak'] / size:.2f} x checkpoint")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=512, help="size of the checkpoint in MiB (default 512)")
    ap.add_argument("--tensors", type=int, default=16, help="number of tensors (default 16)")
    ap.add_argument("--convert", action="store_true", help="measure zoo convert of a sharded pickle checkpoint instead")
    ap.add_argument("--shards", type=int, default=8, help="pickle shards for --convert (default 8)")
    ap.add_argument("--hunyuan", action="store_true", help="measure loading a HunYuan MoE from pickles and from safetensors")
    args = ap.parse_args()
    if args.hunyuan:
        return bench_hunyuan()
    if args.convert:
        return bench_convert(args.shards)
    import torch
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as d:
        n = args.mib * 2**20 // 2 // args.tensors
        cols = 4096
        sd = {f"layer.{i}.weight": torch.randn(n // cols, cols).bfloat16() for i in range(args.tensors)}
        torch.save(sd, Path(d) / "pytorch_model.bin")
        save_file(sd, str(Path(d) / "model.safetensors"))
        size = (Path(d) / "pytorch_model.bin").stat().st_size
        del sd
        print(f"file: {size / 2**20:.0f} MiB, {args.tensors} bf16 tensors")
        print(f"{'reader':<34}{'seconds':>9}{'MLX peak / file':>17}{'RSS growth / file':>19}")
        for kind, label, file in (("zoo", "zoo restricted reader (.bin)", "pytorch_model.bin"),
                                  ("safetensors", "mx.load (.safetensors)", "model.safetensors"),
                                  ("torch", "torch.load(mmap) + copy (.bin)", "pytorch_model.bin")):
            out = subprocess.run([sys.executable, "-c", CHILD, kind, str(Path(d) / file)], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout)
            print(f"{label:<34}{r['seconds']:>9.2f}{r['mlx_peak'] / size:>17.2f}{r['rss_growth'] / size:>19.2f}")


if __name__ == "__main__":
    main()
