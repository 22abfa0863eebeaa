"""Which files of a Hugging Face repo folder zoo needs, decided from the repo listing alone.

Pure functions (no network, no cache): :func:`select` takes the listing (repo path -> size) and
a way to read a weight index, and returns the :class:`Selection` of one folder or refuses it with
an error that says what the folder holds and what would work. :class:`DownloadPlan` is what
``zoo load --dry-run`` prints for a repo that is not (completely) cached. See :mod:`.hub`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from .errors import CheckpointError, CheckpointNotFoundError, UnsafeInputError

ST_INDEX = "model.safetensors.index.json"
PT_INDEX = "pytorch_model.bin.index.json"
#: files zoo reads besides the weights (config, generation config, tokenizers, quantization)
METADATA = frozenset({
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "tokenizer.model", "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json",
    "quantize_config.json", "hy.tiktoken", "hunyuan.tiktoken",
})
METADATA_SUFFIXES = (".tiktoken", ".jinja")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth")


def human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover



# -- what a folder needs ---------------------------------------------------------------------------


@dataclass
class Selection:
    """The files of one repo folder zoo needs, as repo paths (``folder/name``)."""

    folder: str
    files: List[str]
    weights: str  # "safetensors" or "pickle"
    notes: List[str] = field(default_factory=list)


def _label(repo_id: str, folder: str) -> str:
    return f"{repo_id}/{folder}" if folder else repo_id


def _folders(listing: Dict[str, int]) -> Dict[str, Dict[str, list]]:
    """Folder -> {"safetensors": [(name, size)], "pickle": [...]} for every folder with weights."""
    out: Dict[str, Dict[str, list]] = {}
    for path, size in listing.items():
        folder, _, name = path.rpartition("/")
        entry = out.setdefault(folder, {"safetensors": [], "pickle": []})
        if name.endswith(".safetensors"):
            entry["safetensors"].append((name, size))
        elif name.endswith(PICKLE_SUFFIXES) and name != "training_args.bin":
            entry["pickle"].append((name, size))
    return {k: v for k, v in out.items() if v["safetensors"] or v["pickle"]}


def describe_folders(listing: Dict[str, int], exclude: Optional[str] = None) -> List[str]:
    """One line per folder of the repo that holds weights: ``'X/: 80 safetensors files, 390.0 GB'``."""
    lines = []
    for folder, entry in sorted(_folders(listing).items()):
        if folder == exclude:
            continue
        kind = "safetensors" if entry["safetensors"] else "pickle"
        files = entry[kind]
        what = "safetensors" if kind == "safetensors" else "PyTorch pickle"
        lines.append(f"{folder + '/' if folder else '(top level)'}: {len(files)} {what} file(s), {human(sum(s for _, s in files))}")
    return lines


def _index_shards(index: dict, index_path: str, prefix: str, listing: Dict[str, int]) -> List[str]:
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index_path}::$.weight_map: expected an object mapping tensor names to shard file names")
    shards = []
    for shard in dict.fromkeys(weight_map.values()):
        if shard.startswith("/") or ".." in shard.split("/"):
            raise UnsafeInputError(f"{index_path}::$.weight_map: shard {shard!r} points outside the checkpoint folder")
        if prefix + shard not in listing:
            raise CheckpointNotFoundError(f"{index_path}: shard {shard!r} is not in the repository",
                                          hint="the index and the shards come from different versions of the checkpoint")
        shards.append(prefix + shard)
    return shards


def select(listing: Dict[str, int], subfolder: Optional[str] = None, *, repo_id: str = "the repo",
           allow_pickle_weights: bool = False, read_index: Optional[Callable[[str], Optional[dict]]] = None) -> Selection:
    """Decide which files of ``listing`` (repo path -> size) loading ``subfolder`` needs.

    ``read_index(path)`` returns a weight index's JSON (``None`` when it cannot be read without a
    download, as in a dry run: the shards are then guessed from the folder's file names). Raises
    :class:`UnsafeInputError` for a folder with only pickles (unless allowed) and
    :class:`CheckpointNotFoundError` for a folder without a config or without weights.
    """
    folder = (subfolder or "").strip("/")
    prefix = folder + "/" if folder else ""
    here = {p[len(prefix):]: s for p, s in listing.items() if p.startswith(prefix) and "/" not in p[len(prefix):]}
    where = _label(repo_id, folder)
    others = describe_folders(listing, exclude=folder)
    elsewhere = ("; folders of this repo with weights: " + "; ".join(others)) if others else ""
    if not here:
        raise CheckpointNotFoundError(f"{where}: no such folder in the repository" + elsewhere,
                                      hint="fix the subfolder (a card's source.subfolder)")
    read_index = read_index or (lambda path: None)
    notes: List[str] = []
    shards: List[str] = []
    pickles: List[str] = []
    index_file = prefix + (ST_INDEX if ST_INDEX in here else PT_INDEX) if ST_INDEX in here or PT_INDEX in here else None
    has_safetensors = any(n.endswith(".safetensors") for n in here)
    # an index is read (downloaded: it is small) only when the folder can be served at all
    data = read_index(index_file) if index_file and (has_safetensors or allow_pickle_weights) else None
    if data is not None:
        named = _index_shards(data, index_file, prefix, listing)
        if all(n.endswith(".safetensors") for n in named):
            shards = named
            if index_file.endswith(PT_INDEX):
                notes.append(f"{PT_INDEX} lists safetensors shards (a misnamed safetensors index); its shards are used")
        elif all(n.endswith(PICKLE_SUFFIXES) for n in named):
            pickles = named
        else:
            raise CheckpointError(f"{index_file}::$.weight_map: mixes safetensors and pickle shards",
                                  hint="the index and the shards come from different versions of the checkpoint")
    if not shards:
        found = sorted(n for n in here if n.endswith(".safetensors"))
        found = [n for n in found if n.startswith("model")] or found
        shards = [prefix + n for n in found]
        if shards and index_file and data is None:
            notes.append(f"{index_file.rpartition('/')[2]} was not read (dry run): all {len(shards)} safetensors files of the folder are listed")
        elif shards and pickles:
            index_file = None  # the index names pickles; the folder's safetensors are used without it
    weights = "safetensors"
    if not shards:
        pickles = pickles or [prefix + n for n in sorted(here) if n.endswith(PICKLE_SUFFIXES) and n != "training_args.bin"]
        if pickles:
            size = human(sum(listing[p] for p in pickles))
            names = ", ".join(p.rpartition("/")[2] for p in pickles[:2]) + (", ..." if len(pickles) > 2 else "")
            if not allow_pickle_weights:
                alternatives = ["pass --allow-pickle-weights (allow_pickle_weights=True): zoo reads them with a restricted "
                                "unpickler that runs no code, and `zoo convert` can then write safetensors once"]
                alternatives += [f"a folder of this repo with safetensors: {line}" for line in others if "safetensors" in line]
                stem = folder.rpartition("/")[2] if folder else repo_id.rpartition("/")[2]
                alternatives.append(f"a community safetensors conversion (https://huggingface.co/models?search={stem})")
                raise UnsafeInputError(
                    f"{where}: holds only PyTorch pickle weights ({len(pickles)} file(s): {names}; {size}); "
                    "nothing was downloaded",
                    hint="; or ".join(alternatives),
                )
            shards, weights = pickles, "pickle"
            notes.append(f"PyTorch pickle weights ({len(pickles)} file(s), {size}), read with allow_pickle_weights")
    if "config.json" not in here:
        tokenizer_only = not shards and any(n in METADATA or n.endswith(METADATA_SUFFIXES) for n in here)
        what = "tokenizer files only, no config.json and no weights" if tokenizer_only else "no config.json"
        raise CheckpointNotFoundError(f"{where}: {what} (files: {', '.join(sorted(here)[:6])}{', ...' if len(here) > 6 else ''})"
                                      + elsewhere, hint="load a folder with config.json and weights"
                                      + (f": `zoo load {repo_id}/FOLDER` (a card's source.subfolder)" if others else ""))
    if not shards:
        raise CheckpointNotFoundError(f"{where}: no weights (no *.safetensors, no index) among {len(here)} file(s)" + elsewhere,
                                      hint=f"load one folder of the repo: `zoo load {repo_id}/FOLDER` (a card's source.subfolder)"
                                      if others else "load another repository")
    meta = [prefix + n for n in sorted(here) if n in METADATA or n.endswith(METADATA_SUFFIXES)]
    files = list(dict.fromkeys(meta + ([index_file] if index_file else []) + shards))
    return Selection(folder, files, weights, notes)


# -- the plan --------------------------------------------------------------------------------------


@dataclass
class PlannedFile:
    path: str
    size: int
    cached: bool


@dataclass
class DownloadPlan:
    """What :func:`resolve` would download (``dry_run=True``): every needed file, its size, cached or not."""

    repo_id: str
    revision: Optional[str]
    commit: str
    subfolder: Optional[str]
    files: List[PlannedFile]
    weights: str = "safetensors"
    notes: List[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def fetch_bytes(self) -> int:
        return sum(f.size for f in self.files if not f.cached)

    @property
    def to_fetch(self) -> List[PlannedFile]:
        return [f for f in self.files if not f.cached]

    def lines(self) -> List[str]:
        at = f"@{self.revision}" if self.revision else ""
        out = [f"{_label(self.repo_id, self.subfolder or '')}{at} (commit {self.commit[:12]}): would download "
               f"{len(self.to_fetch)} of {len(self.files)} file(s), {human(self.fetch_bytes)} of {human(self.total_bytes)}"]
        width = max((len(f.path) for f in self.files), default=0)
        out += [f"  {f.path:<{width}}  {human(f.size):>9}  {'cached' if f.cached else 'download'}" for f in self.files]
        out += [f"  note: {n}" for n in self.notes]
        return out

    def as_dict(self) -> dict:
        return {"repo_id": self.repo_id, "revision": self.revision, "commit": self.commit, "subfolder": self.subfolder,
                "weights": self.weights, "total_bytes": self.total_bytes, "fetch_bytes": self.fetch_bytes,
                "files": [{"path": f.path, "size": f.size, "cached": f.cached} for f in self.files], "notes": self.notes}
