"""Hugging Face Hub resolution: list first, fetch only what zoo will load, cache first.

:func:`resolve` turns ``owner/name`` (plus an optional ``subfolder`` and ``revision``) into a local
snapshot folder:

1. **Cache first.** When the local cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``) holds a complete
   snapshot of the folder, it is returned with no network call. "Complete" is judged from the
   repo listing huggingface_hub caches next to the snapshot (``trees/<commit>.json``) when there is
   one, else from the folder itself (``config.json`` and every shard its index names).
2. **List, then decide.** Otherwise (or with ``refresh=True``) the hub is asked for the file list
   with sizes (``HfApi.model_info(files_metadata=True)``), and :func:`select` picks what is needed
   from the one folder (the card's ``subfolder``, never its sibling variant folders): the config,
   generation config and tokenizer files, and the weights: the shards the safetensors index names
   (also when the index is misnamed ``pytorch_model.bin.index.json`` but lists ``.safetensors``
   shards, as Hunyuan-A13B's does), else the folder's ``*.safetensors``, else, only with
   ``allow_pickle_weights``, its PyTorch pickle shards. A folder zoo cannot serve is refused before
   a byte is downloaded, saying what is there and what would work.
3. **Download** with huggingface_hub (its progress bars, sizes included), after announcing the
   total on stderr. ``dry_run=True`` downloads nothing and returns a :class:`DownloadPlan`.

``HF_HUB_OFFLINE=1`` uses the cache only. ``HF_ENDPOINT``, ``HF_HUB_CACHE``/``HF_HOME`` and
``HF_HUB_OFFLINE`` are read when :func:`resolve` is called, not when huggingface_hub is imported.
Python shipped with a checkpoint (``*.py``) is never fetched: zoo does not run it.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

from .errors import CheckpointError, CheckpointNotFoundError, UnsafeInputError, ZooWarning
from .hub_select import DownloadPlan, PlannedFile, Selection, _label, describe_folders, human, select  # noqa: F401 - re-exported

DEFAULT_ENDPOINT = "https://huggingface.co"
COMMIT = re.compile(r"^[0-9a-f]{40}$")

_OPTIONS: contextvars.ContextVar = contextvars.ContextVar("zoo_hub_options", default={})


@contextlib.contextmanager
def options(*, refresh: Optional[bool] = None, dry_run: Optional[bool] = None, allow_pickle_weights: Optional[bool] = None):
    """Defaults for every :func:`resolve` inside the ``with`` block (the CLI sets them from its flags).

    An argument given to :func:`resolve` explicitly wins; ``None`` here leaves the outer setting.
    """
    given = {"refresh": refresh, "dry_run": dry_run, "allow_pickle_weights": allow_pickle_weights}
    values = {**_OPTIONS.get(), **{k: bool(v) for k, v in given.items() if v is not None}}
    if refresh:
        values["checked"] = {}  # folders re-checked inside this block: one command asks the hub once per folder
    token = _OPTIONS.set(values)
    try:
        yield
    finally:
        _OPTIONS.reset(token)


def _option(name: str, value: Optional[bool]) -> bool:
    return bool(value) if value is not None else bool(_OPTIONS.get().get(name, False))


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


# -- the cache -------------------------------------------------------------------------------------


def storage_folder(repo_id: str) -> Path:
    from .hub_env import hf_cache_dir

    return hf_cache_dir() / ("models--" + repo_id.replace("/", "--"))


def cached_commit(repo_id: str, revision: Optional[str]) -> Optional[str]:
    if revision and COMMIT.match(revision):
        return revision
    ref = storage_folder(repo_id) / "refs" / (revision or "main")
    return ref.read_text().strip() if ref.is_file() else None


def cached_listing(repo_id: str, commit: str) -> Optional[Dict[str, int]]:
    """The repo listing huggingface_hub cached at ``commit`` (``trees/<commit>.json``), or ``None``."""
    try:
        from huggingface_hub import get_cached_repo_tree
        from huggingface_hub.errors import CachedRepoTreeNotFoundError
    except ImportError:  # huggingface_hub before the tree cache: judge the folder itself
        return None
    from .hub_env import hf_cache_dir

    try:
        return {f.path: int(f.size or 0) for f in get_cached_repo_tree(repo_id, revision=commit, cache_dir=hf_cache_dir())}
    except CachedRepoTreeNotFoundError:
        return None


def _local_reader(snapshot: Path) -> Callable[[str], Optional[dict]]:
    def read(path: str) -> Optional[dict]:
        file = snapshot / path
        if not file.is_file():
            return None
        try:
            return json.loads(file.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{file}: weight index is not valid JSON: {e}", hint="delete it from the cache and download again") from None
    return read


def _from_cache(repo_id: str, revision: Optional[str], subfolder: Optional[str], allow_pickle: bool):
    """``(folder, missing)`` from the cache: ``missing`` lists the needed files not cached (``None``: unknown).

    ``(None, None)`` when nothing is cached for this revision. With a cached hub listing a folder zoo
    cannot serve is refused here, with no network call.
    """
    commit = cached_commit(repo_id, revision)
    snapshot = storage_folder(repo_id) / "snapshots" / commit if commit else None
    if snapshot is None or not snapshot.is_dir():
        return None, None
    folder = snapshot / subfolder if subfolder else snapshot
    listing = cached_listing(repo_id, commit)
    strict = listing is not None  # a cached hub listing answers for sure; the folder alone may just be partial
    if listing is None:
        base = f"{subfolder}/" if subfolder else ""
        listing = {base + p.name: p.stat().st_size for p in folder.glob("*") if p.is_file()} if folder.is_dir() else {}
    try:
        chosen = select(listing, subfolder, repo_id=repo_id, allow_pickle_weights=allow_pickle, read_index=_local_reader(snapshot))
    except (CheckpointNotFoundError, UnsafeInputError):
        if strict:
            raise
        return folder, None
    missing = [p for p in chosen.files if not (snapshot / p).is_file()]
    return folder, (missing if strict or not missing else None)


# -- resolving -------------------------------------------------------------------------------------


def resolve(repo_id: str, *, revision: Optional[str] = None, subfolder: Optional[str] = None,
            allow_pickle_weights: Optional[bool] = None, refresh: Optional[bool] = None,
            dry_run: Optional[bool] = None) -> Union[Path, DownloadPlan]:
    """The local folder of ``repo_id`` (its ``subfolder``), downloading only what loading needs.

    Returns a :class:`DownloadPlan` instead when ``dry_run`` is set and something would be
    downloaded. Flags left at ``None`` take the :func:`options` in effect (default ``False``).
    ``refresh`` asks the hub again even when the cache is complete (from :func:`options`: once per
    folder inside the ``with`` block, so one command asks once).
    """
    from .hub_env import hf_cache_dir, hf_offline

    allow_pickle = _option("allow_pickle_weights", allow_pickle_weights)
    checked = _OPTIONS.get().get("checked", {}) if refresh is None else {}
    refresh, dry_run = _option("refresh", refresh), _option("dry_run", dry_run)
    subfolder = (subfolder or "").strip("/") or None
    key = (str(hf_cache_dir()), repo_id, revision, subfolder, allow_pickle)
    if hf_offline():
        folder, missing = _from_cache(repo_id, revision, subfolder, allow_pickle)
        if folder is None:
            raise CheckpointNotFoundError(
                f"{repo_id}: not a local folder and not in the Hugging Face cache ({hf_cache_dir()})",
                hint=f"download it first (`hf download {repo_id}`) or unset HF_HUB_OFFLINE")
        if missing:
            raise CheckpointNotFoundError(
                f"{repo_id}: the cached snapshot {folder} is incomplete: {len(missing)} needed file(s) missing, e.g. {missing[0]}",
                hint="unset HF_HUB_OFFLINE to finish the download")
        return folder  # as huggingface_hub does offline: a snapshot without a cached listing is taken as it is
    if not refresh or key in checked:
        folder, missing = _from_cache(repo_id, revision, subfolder, allow_pickle)
        if folder is not None and missing == []:
            return folder
    result = _fetch(repo_id, revision, subfolder, allow_pickle, dry_run)
    if isinstance(result, Path):
        checked[key] = result
    return result


def allow_patterns(paths: List[str]) -> List[str]:
    """Exact-match patterns for huggingface_hub's ``allow_patterns`` (fnmatch-escaped)."""
    return [re.sub(r"([*?\[])", r"[\1]", p) for p in paths]


def announce(plan: DownloadPlan, stream=None) -> None:
    """One line on stderr before a download: how many files and bytes, from where, into which cache."""
    from .hub_env import hf_cache_dir

    stream = stream or sys.stderr
    print(f"zoo: downloading {len(plan.to_fetch)} file(s), {human(plan.fetch_bytes)}, of "
          f"{_label(plan.repo_id, plan.subfolder or '')} (commit {plan.commit[:12]}) into {hf_cache_dir()}", file=stream)
    for note in plan.notes:
        print(f"zoo: note: {note}", file=stream)


def _write_ref(repo_id: str, revision: Optional[str], commit: str) -> None:
    """Record ``revision -> commit`` in ``refs/`` as huggingface_hub does, so the cache finds it offline."""
    if revision and COMMIT.match(revision):
        return
    ref = storage_folder(repo_id) / "refs" / (revision or "main")
    try:
        ref.parent.mkdir(parents=True, exist_ok=True)
        if not ref.is_file() or ref.read_text().strip() != commit:
            tmp = ref.with_name(f"{ref.name}.{os.getpid()}.tmp")
            tmp.write_text(commit)
            os.replace(tmp, ref)
    except OSError as e:  # a read-only cache still serves this process
        warnings.warn(ZooWarning(f"could not record {repo_id}@{revision or 'main'} -> {commit} in {ref}: {e}"), stacklevel=3)


def _hub_error(repo_id: str, revision: Optional[str], url: str, error: Exception):
    """huggingface_hub's answer -> a :class:`CheckpointNotFoundError`, or ``None`` when the hub was unreachable."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(error, GatedRepoError):
        return CheckpointNotFoundError(f"{repo_id}: a gated repository on the Hugging Face Hub ({url})",
                                       hint=f"accept its terms on {url}/{repo_id} and log in with `hf auth login`")
    if isinstance(error, RevisionNotFoundError):
        return CheckpointNotFoundError(f"{repo_id}: revision {revision!r} does not exist on the Hugging Face Hub ({url})",
                                       hint="use a branch, tag or commit of the repository (default: main)")
    if isinstance(error, RepositoryNotFoundError):
        return CheckpointNotFoundError(f"{repo_id}: no such repository on the Hugging Face Hub ({url}), or it is private",
                                       hint="check the name; for a private repository log in with `hf auth login`")
    response = getattr(error, "response", None)
    if isinstance(error, HfHubHTTPError) and response is not None and response.status_code < 500:
        return CheckpointNotFoundError(f"{repo_id}: the Hugging Face Hub ({url}) refused the request: {error}")
    return None


def _fetch(repo_id: str, revision: Optional[str], subfolder: Optional[str], allow_pickle: bool, dry_run: bool):
    """Ask the hub for the listing, select, then download what is missing (or plan it)."""
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    from .hub_env import hf_cache_dir

    cache, url = hf_cache_dir(), endpoint()
    try:
        info = HfApi(endpoint=url).model_info(repo_id, revision=revision, files_metadata=True)
    except Exception as e:  # noqa: BLE001 - network, hub and HTTP errors are all user-facing
        known = _hub_error(repo_id, revision, url, e)
        if known is not None:
            raise known from None
        folder, _ = _from_cache(repo_id, revision, subfolder, allow_pickle)
        if folder is not None and folder.is_dir() and not dry_run:
            warnings.warn(ZooWarning(f"{repo_id}: the Hugging Face Hub ({url}) could not be reached ({type(e).__name__}); "
                                     f"using the cached snapshot {folder}, which may be incomplete"), stacklevel=3)
            return folder
        raise CheckpointNotFoundError(f"{repo_id}: not in the Hugging Face cache ({cache}), and the Hub ({url}) could not be "
                                      f"reached: {type(e).__name__}: {e}",
                                      hint="check the network and HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use the cache only") from None
    commit = info.sha
    listing = {s.rfilename: int(s.size or 0) for s in info.siblings or []}
    snapshot = storage_folder(repo_id) / "snapshots" / commit
    local = _local_reader(snapshot)

    def read_index(path: str) -> Optional[dict]:
        data = local(path)
        if data is None and not dry_run:  # an index is small: fetch it to learn which shards are needed
            hf_hub_download(repo_id, path, revision=commit, cache_dir=cache, endpoint=url)
            data = local(path)
        return data

    chosen = select(listing, subfolder, repo_id=repo_id, allow_pickle_weights=allow_pickle, read_index=read_index)
    files = [PlannedFile(p, listing[p], (snapshot / p).is_file()) for p in chosen.files]
    plan = DownloadPlan(repo_id, revision, commit, subfolder, files, chosen.weights, chosen.notes)
    folder = snapshot / subfolder if subfolder else snapshot
    if dry_run:
        return plan if plan.to_fetch else folder  # a dry run writes nothing to the cache, not even refs/
    if plan.to_fetch:
        announce(plan)
        try:
            snapshot_download(repo_id, revision=commit, cache_dir=cache, endpoint=url,
                              allow_patterns=allow_patterns([f.path for f in plan.to_fetch]))
        except Exception as e:  # noqa: BLE001
            raise CheckpointNotFoundError(f"{repo_id}: downloading from the Hugging Face Hub ({url}) failed: {type(e).__name__}: {e}",
                                          hint="run the command again: finished files stay in the cache") from None
    _write_ref(repo_id, revision, commit)
    missing = [p for p in chosen.files if not (snapshot / p).is_file()]
    if missing:
        raise CheckpointError(f"{repo_id}: after the download, {len(missing)} file(s) are missing from {snapshot}, e.g. {missing[0]}")
    return folder

