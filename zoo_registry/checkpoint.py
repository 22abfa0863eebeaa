"""Find and read checkpoints on disk: folders, shards, safetensors headers, the Hugging Face cache.

zoo reads safetensors. A folder holding just pickle-based weights (``*.bin``, ``*.pt``, ``*.pth``,
``*.ckpt``, ``*.pkl``) is refused with :class:`UnsafeInputError` (unpickling can run arbitrary
code) unless the caller opts in with ``allow_pickle_weights=True``; then PyTorch zip checkpoints
are read by :mod:`.torch_pickle`, a restricted reader that admits tensor data only. Headers are parsed with :mod:`json` from the first ``8 + N`` bytes of each file, so
planning a conversion never touches tensor data; tensors are opened with ``mx.load``, which maps
them lazily.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from .errors import CheckpointError, CheckpointNotFoundError, UnsafeInputError
from .hub_env import hf_cache_dir, hf_offline  # noqa: F401 - re-exported: their home before hub.py existed
from .sanitize.tensors import Spec

INDEX_FILE = "model.safetensors.index.json"
PICKLE_INDEX_FILE = "pytorch_model.bin.index.json"  # transformers' name; A13B's lists safetensors shards
PICKLE_OPT_IN = ("pass --allow-pickle-weights (allow_pickle_weights=True) to read them with zoo's restricted reader, "
                 "which admits tensor data only and runs no code from the file; or run "
                 "`zoo convert SRC DST --allow-pickle-weights` once to get safetensors")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
MAX_HEADER_BYTES = 100 * 1024 * 1024
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

# safetensors dtype codes -> MLX dtype names
_DTYPES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "U16": "uint16", "I16": "int16", "F16": "float16",
    "BF16": "bfloat16", "U32": "uint32", "I32": "int32", "F32": "float32", "U64": "uint64",
    "I64": "int64", "F64": "float64", "F8_E4M3": "float8_e4m3", "F8_E5M2": "float8_e5m2",
}


_REDOWNLOAD = "the file is damaged or incomplete (an interrupted download?); download or convert it again"


def read_header(path, verify_data: bool = False) -> Dict[str, Spec]:
    """Tensor name → :class:`Spec` from a safetensors header (no tensor data is read).

    With ``verify_data``, also check that the file is long enough for every tensor the header
    describes, so that a truncated download is reported here, by name, rather than deep inside
    MLX. (A dry run leaves it off: it plans from headers alone.)
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise CheckpointError(f"{path}: not a safetensors file (shorter than 8 bytes)", hint=_REDOWNLOAD)
            (n,) = struct.unpack("<Q", raw)
            if n > MAX_HEADER_BYTES or n > size - 8:
                raise CheckpointError(f"{path}: not a safetensors file (header length {n} is impossible for a {size}-byte file)",
                                      hint=_REDOWNLOAD)
            header = json.loads(f.read(n))
    except CheckpointError:
        raise
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {e.strerror or e}") from None
    except RecursionError:
        raise CheckpointError(f"{path}: safetensors header is not valid JSON: nested too deeply", hint=_REDOWNLOAD) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: safetensors header is not valid JSON: {e}", hint=_REDOWNLOAD) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: safetensors header is not a JSON object", hint=_REDOWNLOAD)
    out = {}
    data_bytes = size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            out[name] = Spec(tuple(int(s) for s in entry["shape"]), _DTYPES.get(entry["dtype"], entry["dtype"].lower()))
            begin, end = (int(o) for o in entry.get("data_offsets", (0, 0)))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise CheckpointError(f"{path}: header entry for tensor {name!r} is malformed: {_short(entry)}", hint=_REDOWNLOAD) from None
        if verify_data and (not 0 <= begin <= end or end > data_bytes):
            raise CheckpointError(
                f"{path}: truncated or corrupt: tensor {name!r} needs data bytes {begin}..{end}, but the file has only {data_bytes}",
                hint=_REDOWNLOAD,
            )
    return out


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


@dataclass
class Checkpoint:
    """A checkpoint folder and its weight files (validated to exist)."""

    path: Path
    files: List[Path]
    index: Optional[Dict[str, str]] = None  # tensor -> shard file name, when sharded with an index
    index_file: str = INDEX_FILE
    staging: Optional[Path] = None  # where pickle files are rewritten as safetensors before mapping (zoo convert)

    @property
    def pickle_files(self) -> List[Path]:
        """The files read with the restricted pickle reader (empty for safetensors checkpoints)."""
        return [f for f in self.files if is_pickle(f)]

    def specs(self) -> Dict[str, Spec]:
        """Shapes and dtypes of every tensor, from the headers only."""
        out: Dict[str, Spec] = {}
        for f in self.files:
            out.update(file_specs(f))
        return out

    def tensors(self, names: Optional[Iterable[str]] = None) -> dict:
        """Every tensor as an ``mx.array``: safetensors memory-mapped until evaluated, pickles copied once.

        With ``names``, only those tensors (the ones present), read from only the files that hold
        them: a check of two tensors does not copy every pickle shard.
        """
        wanted = None if names is None else set(names)
        out = {}
        for f in self.files:
            if wanted is not None and not wanted & set(file_specs(f)):
                continue
            tensors = file_tensors(f, self.staging)
            out.update(tensors if wanted is None else {k: v for k, v in tensors.items() if k in wanted})
        return out

    def non_finite(self, limit: int = 3) -> List[str]:
        """Describe up to ``limit`` floating-point tensors holding NaN or inf (reads every tensor once).

        Each line is ``FILE: tensor 'NAME' holds K non-finite values (NaN or inf) of N``. Tensors
        are checked one at a time, so memory stays at about the largest tensor.
        """
        import mlx.core as mx

        from .sanitize.tensors import is_floating

        found: List[str] = []
        for f in self.files:
            arrays = file_tensors(f, self.staging)
            for name in sorted(arrays):
                a = arrays.pop(name)
                if not is_floating(a.dtype):
                    continue
                try:
                    bad = int((~mx.isfinite(a)).sum().item())
                except (RuntimeError, ValueError) as e:
                    raise CheckpointError(f"{f}: cannot read tensor {name!r}: {e}", hint=_REDOWNLOAD) from None
                if bad:
                    found.append(f"{f}: tensor {name!r} holds {bad} non-finite values (NaN or inf) of {a.size}")
                    if len(found) >= limit:
                        return found
        return found


def is_pickle(path: Path) -> bool:
    return Path(path).suffix in PICKLE_SUFFIXES


def file_specs(path: Path) -> Dict[str, Spec]:
    """Shapes and dtypes of one weight file (safetensors header, or a pickle's ``data.pkl``)."""
    if is_pickle(path):
        from .torch_pickle import read_specs

        return read_specs(path)
    return read_header(path)


def file_tensors(path: Path, staging: Optional[Path] = None) -> dict:
    """The tensors of one weight file as ``mx.array``s, naming the file if it cannot be read.

    A pickle is copied into memory by the restricted reader; with ``staging``, it is written there
    as a safetensors file first (one file in memory at a time) and mapped lazily from it, so a
    conversion of many pickle shards needs the memory of one shard, as for safetensors.
    """
    import mlx.core as mx

    if is_pickle(path) and staging is None:
        from .torch_pickle import read_tensors

        return read_tensors(path)
    if is_pickle(path):
        from .torch_pickle import read_tensors

        staged = Path(staging) / f"{path.name}.safetensors"
        if not staged.is_file():
            part = staged.with_name(f".partial.{staged.name}")  # mx.save_safetensors adds .safetensors to other names
            mx.save_safetensors(str(part), read_tensors(path))
            part.rename(staged)
        path = staged

    read_header(path, verify_data=True)  # names a truncated or malformed file before MLX maps it
    try:
        return mx.load(str(path))
    except (RuntimeError, ValueError, OSError) as e:
        raise CheckpointError(f"{path}: cannot read safetensors file: {e}", hint=_REDOWNLOAD) from None


# files trainers save next to the weights that are pickles but not weights
_NOT_WEIGHTS = ("training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt")


def _pickles(folder: Path) -> List[Path]:
    found = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
    weights = [p for p in found if p.name.startswith("pytorch_model")]
    return weights or [p for p in found if p.name not in _NOT_WEIGHTS and not p.name.startswith("rng_state")]


def open_checkpoint(folder, allow_pickle_weights: bool = False) -> Checkpoint:
    """Locate the weight files of ``folder`` (index + shards, or ``model*.safetensors``).

    PyTorch pickles (``pytorch_model*.bin``, with or without ``pytorch_model.bin.index.json``) are
    used only when the folder has no safetensors and ``allow_pickle_weights`` is true; otherwise
    they are refused with :class:`UnsafeInputError` saying how to opt in.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointNotFoundError(f"{folder}: checkpoint folder not found")
    index_path = folder / INDEX_FILE
    if index_path.is_file():
        return _from_index(folder, index_path, allow_pickle_weights)
    files = sorted(folder.glob("model*.safetensors")) or sorted(folder.glob("*.safetensors"))
    pickle_index = folder / PICKLE_INDEX_FILE
    if pickle_index.is_file() and (not files or all(f.name in _index_shards(pickle_index) for f in files)):
        return _from_index(folder, pickle_index, allow_pickle_weights)  # A13B's index has this name but lists safetensors
    if files:
        return Checkpoint(folder, files)
    pickles = _pickles(folder)
    if pickles and allow_pickle_weights:
        return Checkpoint(folder, pickles)
    if pickles:
        names = ", ".join(p.name for p in pickles[:3]) + (" ..." if len(pickles) > 3 else "")
        raise UnsafeInputError(
            f"{folder}: only pickle-based weights found ({names}); zoo reads pickles only when asked to, "
            "because unpickling can run code",
            hint=PICKLE_OPT_IN,
        )
    raise CheckpointNotFoundError(
        f"{folder}: no weights found (expected model.safetensors, model-XXXXX-of-XXXXX.safetensors with {INDEX_FILE}, or *.safetensors)"
    )


def _index_shards(index_path: Path) -> set:
    """The shard names an index lists (empty if it cannot be read; :func:`_from_index` reports why)."""
    try:
        weight_map = json.loads(index_path.read_text()).get("weight_map")
        return {v for v in weight_map.values() if isinstance(v, str)}
    except (OSError, ValueError, AttributeError, TypeError, RecursionError):
        return set()


def _from_index(folder: Path, index_path: Path, allow_pickle_weights: bool = False) -> Checkpoint:
    from .files import read_json

    data = read_json(index_path, "safetensors index" if index_path.name == INDEX_FILE else "weights index")
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index_path}::$.weight_map: expected an object mapping tensor names to shard file names")
    shards = []
    for shard in dict.fromkeys(weight_map.values()):
        rel = Path(shard)
        if rel.is_absolute() or ".." in rel.parts:
            raise UnsafeInputError(f"{index_path}::$.weight_map: shard {shard!r} points outside the checkpoint folder")
        if rel.suffix in PICKLE_SUFFIXES and not allow_pickle_weights:
            raise UnsafeInputError(f"{index_path}: shard {shard!r} is a pickle file; zoo reads pickles only when asked to, "
                                   "because unpickling can run code", hint=PICKLE_OPT_IN)
        path = folder / rel
        if not path.is_file():
            users = sum(1 for v in weight_map.values() if v == shard)
            raise CheckpointNotFoundError(
                f"{index_path}: shard {shard!r} (holding {users} tensors) is missing from {folder}",
                hint="the download is incomplete; fetch the missing file or remove the stale index",
            )
        shards.append(path)
    return Checkpoint(folder, shards, dict(weight_map), index_path.name)


def check_index(ckpt: Checkpoint) -> None:
    """Every tensor the index names must be in the shard it names (headers only)."""
    if not ckpt.index:
        return
    present = {f.name: set(file_specs(f)) for f in ckpt.files}
    absent = [name for name, shard in ckpt.index.items() if name not in present.get(Path(shard).name, set())]
    if absent:
        raise CheckpointError(
            f"{ckpt.path / ckpt.index_file}: {len(absent)} tensor(s) listed in the index are not in their shard, e.g. {absent[0]!r}",
            hint="the index and the shards come from different versions of the checkpoint",
        )


# -- Hugging Face cache --------------------------------------------------------------------------


def resolve_hf_repo(repo_id: str, revision: Optional[str] = None, *, subfolder: Optional[str] = None,
                    allow_pickle_weights: Optional[bool] = None, refresh: Optional[bool] = None, dry_run: Optional[bool] = None):
    """A snapshot folder for ``repo_id`` (its ``subfolder``): the cache first, else only the files loading needs.

    See :func:`zoo_registry.hub.resolve` (which this calls): with ``HF_HUB_OFFLINE=1`` only the cache
    is used; pickles are fetched only with ``allow_pickle_weights``; ``dry_run`` returns a
    :class:`~zoo_registry.hub.DownloadPlan` when something would be downloaded.
    """
    from . import hub

    return hub.resolve(repo_id, revision=revision, subfolder=subfolder, allow_pickle_weights=allow_pickle_weights,
                       refresh=refresh, dry_run=dry_run)
