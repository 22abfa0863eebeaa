"""``zoo convert SRC DST [--quantize N] [--to mlx|hf] [--allow-pickle-weights]``: rewrite a checkpoint in another layout.

SRC is a folder, a model card or a cached Hugging Face repo id. ``--to mlx`` (default) writes the
MLX layout (loadable by ``mlx_lm.load`` when mlx-lm serves the model_type); ``--to hf`` writes the
original per-expert Hugging Face layout through the inverse sanitize ops. With
``--allow-pickle-weights`` a folder of PyTorch pickles is read by the restricted reader and written
as safetensors once. MLX is imported in ``run`` only.
"""

import sys


def add_parser(sub):
    p = sub.add_parser("convert", help="write a checkpoint in MLX layout (optionally quantized) or back in Hugging Face layout")
    p.add_argument("src", metavar="SRC", help="a checkpoint folder, a model card name or a Hugging Face repo id")
    p.add_argument("dst", metavar="DST", help="the folder to write (must be new or empty unless --force)")
    p.add_argument("--quantize", "-q", type=int, choices=(2, 3, 4, 5, 6, 8), metavar="BITS", help="quantize to BITS bits (router kept unquantized)")
    p.add_argument("--group-size", type=int, default=64, choices=(32, 64, 128), help="quantization group size (default 64)")
    p.add_argument("--to", choices=("mlx", "hf"), default="mlx", help="layout to write (default mlx)")
    p.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), help="cast floating-point weights")
    p.add_argument("--force", action="store_true", help="overwrite weights in a non-empty DST")
    p.add_argument("--allow-pickle-weights", action="store_true",
                   help="read PyTorch pickle weights (pytorch_model*.bin) with zoo's restricted reader and write them as safetensors")
    p.set_defaults(run=run)


def run(args):
    from pathlib import Path

    from ..convert import convert, describe_folder

    info = convert(args.src, args.dst, to=args.to, quantize=args.quantize, group_size=args.group_size, dtype=args.dtype, force=args.force,
                   allow_pickle_weights=args.allow_pickle_weights, registry=args.registry)
    report = info.report
    if report is not None and report.applied:
        print("rules applied: " + ", ".join(f"{k} x{v}" for k, v in report.applied.items()), file=sys.stderr)
    print(f"{describe_folder(Path(args.dst))} ({info.architecture}, {args.to} layout)")
    if info.pickle_files:
        print(f"read {len(info.pickle_files)} PyTorch pickle file(s) with zoo's restricted reader; load DST without --allow-pickle-weights",
              file=sys.stderr)
    return 0
