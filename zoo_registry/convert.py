"""Write a loaded model back to disk: MLX layout (default) or the original Hugging Face layout.

``to="mlx"`` writes the model's own parameter names (``switch_mlp`` stacked experts, ...), i.e.
what ``mlx_lm.convert`` writes, so the folder also loads with plain ``mlx_lm.load`` when mlx-lm
serves the same ``model_type``. ``to="hf"`` runs the inverse of the architecture's rules marked
``export: true`` (e.g. unstack ``switch_mlp`` back to ``experts.{e}``).

Tensors stay lazy until a shard is written, so peak memory is about one shard (plus quantization
work), not the whole model twice.

A new destination is written into a hidden sibling folder and renamed into place at the end, so
an interrupted or failed conversion never leaves a half-written checkpoint that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from .errors import ConfigError
from .files import read_json

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "vocab.json",
    "vocab.txt", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json", "generation_config.json",
)
TOKENIZER_GLOBS = ("*.tiktoken",)
SHARD_BYTES = 5 * 1024**3


def convert(src, dst, *, to: str = "mlx", quantize: Optional[int] = None, group_size: int = 64, dtype=None,
            force: bool = False, shard_bytes: int = SHARD_BYTES, registry=None, allow_pickle_weights: bool = False):
    """Load ``src`` (folder, card or repo id) and write it to the folder ``dst``; return its :class:`LoadInfo`.

    With ``allow_pickle_weights``, a folder of PyTorch pickles (``pytorch_model*.bin``) is read by the
    restricted reader (:mod:`.torch_pickle`) and written as safetensors, so later loads need no opt-in.
    Each pickle shard is first rewritten as safetensors in a hidden sibling folder of ``dst`` (removed
    at the end), so memory stays at about one shard, as when converting safetensors.
    """
    if to not in ("mlx", "hf"):
        raise ConfigError(f"--to {to!r}: expected 'mlx' or 'hf'")
    dst = Path(dst)
    if dst.exists() and not dst.is_dir():
        raise ConfigError(f"{dst}: destination exists and is not a folder", hint="choose a new folder")
    if dst.exists() and any(dst.iterdir()) and not force:
        raise ConfigError(f"{dst}: destination folder is not empty", hint="choose a new folder, or pass --force to overwrite")
    pickle_staging = None
    if allow_pickle_weights:  # pickle shards are rewritten as safetensors there, one at a time, then mapped lazily
        dst.parent.mkdir(parents=True, exist_ok=True)
        pickle_staging = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".zoo-pickles", dir=dst.parent))
    try:
        return _convert(src, dst, to, quantize, group_size, dtype, force, shard_bytes, registry, allow_pickle_weights, pickle_staging)
    finally:
        if pickle_staging is not None:
            shutil.rmtree(pickle_staging, ignore_errors=True)


def _convert(src, dst, to, quantize, group_size, dtype, force, shard_bytes, registry, allow_pickle_weights, pickle_staging):
    from mlx.utils import tree_flatten

    from .loading import load_model

    model, info = load_model(src, quantize=quantize, group_size=group_size, dtype=dtype, lazy=True, return_info=True, registry=registry,
                             allow_pickle_weights=allow_pickle_weights, pickle_staging=pickle_staging)
    tensors = dict(tree_flatten(model.parameters()))
    del model
    if to == "hf":
        if info.provider == "mlx-lm":
            raise ConfigError(f"{info.architecture} is served by mlx-lm, which has no declarative rules to invert", hint="use --to mlx")
        from .sanitize import engine

        tensors = engine.invert(info.report.rules, tensors, info.config).tensors  # the rules the load applied
    config = dict(info.raw_config)
    if info.quantization is not None:
        config["quantization"] = dict(info.quantization)
        config["quantization_config"] = dict(info.quantization)
    else:  # the weights written are float (e.g. an FP8 or act-order GPTQ source, dequantized)
        config.pop("quantization_config", None)
    if dtype is not None:
        config["torch_dtype"] = str(dtype).rsplit(".", 1)[-1]
    if dst.exists() and any(dst.iterdir()):  # --force: overwrite the weights in place
        for stale in list(dst.glob("model*.safetensors")) + list(dst.glob("model.safetensors.index.json")):
            stale.unlink()
        _write(dst, tensors, config, info.path, shard_bytes)
        return info
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".zoo-partial", dir=dst.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        _write(staging, tensors, config, info.path, shard_bytes)
        if dst.exists():
            dst.rmdir()  # empty (checked above)
        os.replace(staging, dst)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return info


def _write(folder: Path, tensors: dict, config: dict, src: Path, shard_bytes: int) -> None:
    write_safetensors(folder, tensors, shard_bytes=shard_bytes)
    (folder / "config.json").write_text(json.dumps(dict(sorted(config.items())), indent=2) + "\n")
    copy_tokenizer(src, folder)


def write_safetensors(folder: Path, tensors: dict, shard_bytes: int = SHARD_BYTES) -> None:
    """``model.safetensors`` or ``model-XXXXX-of-XXXXX.safetensors`` + index; consumes ``tensors``."""
    import mlx.core as mx

    names = sorted(tensors)
    shards, current, size = [], [], 0
    for name in names:
        nbytes = tensors[name].nbytes
        if current and size + nbytes > shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(name)
        size += nbytes
    if current or not shards:
        shards.append(current)
    total = sum(tensors[n].nbytes for n in names)
    weight_map = {}
    for i, shard in enumerate(shards):
        fname = "model.safetensors" if len(shards) == 1 else f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        part = {n: tensors.pop(n) for n in shard}
        mx.save_safetensors(str(folder / fname), part, metadata={"format": "mlx"})
        weight_map.update({n: fname for n in shard})
        del part
    if len(shards) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def copy_tokenizer(src: Path, dst: Path) -> None:
    """Copy tokenizer and generation files (never Python files: zoo runs no shipped code)."""
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    for pattern in TOKENIZER_GLOBS:
        for path in src.glob(pattern):
            shutil.copy2(path, dst / path.name)


def describe_folder(folder: Path) -> str:
    """One line: files and total size of a written checkpoint."""
    files = sorted(folder.glob("*.safetensors"))
    size = sum(f.stat().st_size for f in files)
    cfg = read_json(folder / "config.json", "config")
    q = cfg.get("quantization")
    qtext = f", {q.get('bits')}-bit" if isinstance(q, dict) else ""
    return f"{folder}: {len(files)} safetensors file(s), {size / 2**20:.1f} MiB{qtext}"


__all__ = ["convert", "write_safetensors", "copy_tokenizer", "describe_folder"]
