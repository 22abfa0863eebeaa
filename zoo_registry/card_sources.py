"""Where a model card's weights come from: its ``source`` turned into a local checkpoint folder.

- ``source.path``: a folder relative to the card (a plugin's card may not point outside its own
  cards folder);
- ``source.hf_repo``: a Hugging Face repo id looked up in the Hugging Face cache, downloaded only
  when allowed (:mod:`.hub`; nothing is downloaded when ``HF_HUB_OFFLINE=1``);
- ``source.generate``: a ``module:function`` that builds the checkpoint once into the zoo cache
  (``ZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/zoo``, else ``~/.cache/zoo``).

Cards are parsed and checked by :mod:`.cards`; this module only reads what they say.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from pathlib import Path
from typing import Callable, Optional

from .errors import CheckpointNotFoundError, PluginError, UnsafeInputError, ZooError


def cache_dir() -> Path:
    """zoo's cache folder: ``ZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/zoo``, else ``~/.cache/zoo``."""
    if os.environ.get("ZOO_CACHE_DIR"):
        return Path(os.environ["ZOO_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "zoo"


def materialize(card, progress: Optional[Callable[[int, int, str], None]] = None) -> Path:
    """A local checkpoint folder for ``card`` (validated first); builds or finds the weights.

    - ``source.path``: the folder itself (it must exist and, for a plugin card, stay inside the
      plugin's cards folder).
    - ``source.hf_repo``: the snapshot in the Hugging Face cache (optionally ``revision`` and
      ``subfolder``); offline-respecting, see :func:`hf_snapshot`.
    - ``source.generate``: ``module:function`` run once as ``function(folder, seed)`` into the zoo
      cache; later calls reuse the folder. ``progress(done, total, what)`` is passed on when the
      generator accepts it; by default a progress bar is drawn on stderr.

    A card taken from a catalogue (``card.catalogue``) lets a refused ``hf_repo`` folder name the
    cards that serve the repo's other folders.
    """
    card.validate()
    kind = card.source_kind
    if kind == "path":
        path = card.local_path()
        if not path.is_dir():
            if os.path.islink(path) or path.exists():  # a file, a looping or dangling link: say which
                from .files import describe_missing

                problem = f"{path}: checkpoint folder is a file" if path.is_file() else describe_missing(path, "checkpoint folder")
                raise CheckpointNotFoundError(f"{card.where('source.path')}: {problem}", hint="fix source.path in the card")
            raise CheckpointNotFoundError(f"{card.where('source.path')}: checkpoint folder {path} does not exist",
                                          hint="fix source.path in the card, or copy the checkpoint there")
        return path
    if kind == "hf":
        src = card.source
        return hf_snapshot(src["hf_repo"], revision=src.get("revision"), subfolder=src.get("subfolder"), where=card.where("source.hf_repo"),
                           catalogue=getattr(card, "catalogue", None))
    return _generated(card, progress)


def generated_folder(card) -> Path:
    """Where the generator of ``card`` writes its checkpoint (a key of target, seed and version)."""
    target, seed = card.source["generate"], int(card.source.get("seed", 0))
    version = getattr(_generator_module(target), "GENERATOR_VERSION", 0)
    digest = hashlib.sha256(f"{target}|{seed}|{version}".encode()).hexdigest()[:12]
    return cache_dir() / "generated" / card.name / f"seed{seed}-{digest}"


def _generator_module(target: str):
    import importlib

    module = target.split(":")[0]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise PluginError(f"cannot import generator module {module!r} ({target!r}): {e}",
                          hint="the plugin that ships this card may be broken; see `zoo plugins`") from e


def _generated(card, progress=None) -> Path:
    from .resources import import_target

    folder = generated_folder(card)
    if (folder / "config.json").is_file():
        return folder
    func = import_target(card.source["generate"])
    seed = int(card.source.get("seed", 0))
    kwargs = {}
    try:
        accepts_progress = "progress" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        accepts_progress = False
    bar = None
    if accepts_progress:
        if progress is None:
            from .progress import Progress

            bar = Progress(f"zoo: creating {card.name} in {folder}")
            progress = bar.callback
        kwargs["progress"] = progress
    ok = False
    try:
        func(folder, seed, **kwargs)
        ok = True
    except FileExistsError as e:
        ok = (folder / "config.json").is_file()  # another process built it first
        if not ok:  # a folder without config.json: what an interrupted, non-atomic generator leaves
            raise PluginError(f"{card.where('source.generate')}: {folder} exists but holds no config.json, so generator "
                              f"{card.source['generate']!r} would not write into it",
                              hint=f"remove {folder} (an interrupted generation left it) and try again") from e
    except ZooError:
        raise
    except Exception as e:  # noqa: BLE001 - plugin code may raise anything
        raise PluginError(f"{card.where('source.generate')}: generator {card.source['generate']!r} failed: {type(e).__name__}: {e}") from e
    finally:
        if bar is not None:
            bar.close(ok=ok)
    if not (folder / "config.json").is_file():
        raise PluginError(f"{card.where('source.generate')}: generator {card.source['generate']!r} did not write {folder / 'config.json'}")
    return folder


# -- Hugging Face cache -------------------------------------------------------------------------
def hf_snapshot(repo_id: str, revision: Optional[str] = None, subfolder: Optional[str] = None, where: Optional[str] = None,
                *, allow_pickle_weights: Optional[bool] = None, refresh: Optional[bool] = None, dry_run: Optional[bool] = None,
                catalogue=None):
    """The local snapshot folder of a Hugging Face repo (its ``subfolder`` if given).

    Resolution is :func:`zoo_registry.hub.resolve`: the Hugging Face cache first (``HF_HUB_CACHE``,
    ``HF_HOME/hub``), else only the files of ``subfolder`` that loading needs are downloaded (never
    when ``HF_HUB_OFFLINE`` is set). With ``dry_run`` a :class:`~zoo_registry.hub.DownloadPlan` is
    returned when something would be downloaded. Errors are prefixed with ``where`` (the card and
    key that named the repo), and, given the card ``catalogue`` (``registry.cards()``), a refused
    folder's hint names the cards serving other folders of the same repo.
    """
    from . import hub

    try:
        path = hub.resolve(repo_id, revision=revision, subfolder=subfolder, allow_pickle_weights=allow_pickle_weights,
                           refresh=refresh, dry_run=dry_run)
    except (CheckpointNotFoundError, UnsafeInputError) as e:
        hint = " ".join(filter(None, [e.hint, _other_cards(catalogue, repo_id, subfolder)])) or None
        raise type(e)(f"{where}: {e}" if where else str(e), hint=hint) from None
    if not isinstance(path, Path):
        return path  # a dry run's DownloadPlan
    at = f"{repo_id}@{revision}" if revision else repo_id
    if not (path / "config.json").is_file():
        raise CheckpointNotFoundError(
            f"{where or repo_id}: the cached snapshot of {at} has no config.json ({path})",
            hint="the download may be incomplete; download it again" + ("" if subfolder else ", or set source.subfolder in the card"),
        )
    return path


def _other_cards(catalogue, repo_id: str, subfolder: Optional[str]) -> str:
    """``'Cards for other folders of REPO: NAME (FOLDER/), ...'``, or an empty string."""
    if catalogue is None:
        return ""
    found = [c for c in catalogue.unique()
             if c.source.get("hf_repo") == repo_id and (c.source.get("subfolder") or "").strip("/") != (subfolder or "").strip("/")]
    names = [f"{c.name} ({c.source.get('subfolder') or 'top level'})" for c in found]
    return f"Cards for other folders of {repo_id}: {', '.join(names)}." if names else ""
