"""Stage 1, source resolution: a folder, a model card name or a Hugging Face repo id → a local folder.

A card is materialised by :mod:`..cards`; a repo id is read from the local cache, else only the
files loading needs are downloaded (:mod:`..hub`; ``HF_HUB_OFFLINE`` respected). With a dry run,
a repo that would need a download resolves to its download plan instead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..checkpoint import REPO_ID, resolve_hf_repo
from ..errors import CheckpointNotFoundError, did_you_mean
from ..files import describe_missing
from ..registry import Registry, get_registry


@dataclass
class Resolved:
    """A resolved source: the local folder (``None`` while a download is only planned), its card, its download plan."""

    path: Optional[Path]
    card: Optional[Any] = None
    download: Optional[Any] = None  # hub.DownloadPlan: a dry run of a repo that is not (completely) cached


def resolve_source(source, registry: Optional[Registry] = None, *, allow_pickle_weights: Optional[bool] = None,
                   refresh: Optional[bool] = None, dry_run: Optional[bool] = None) -> Resolved:
    """A folder path, a model card name, or a Hugging Face repo id (``owner/name``, or
    ``owner/name/folder`` for one folder of a repo) → a local folder.

    The keyword flags go to :func:`..hub.resolve` (``None``: the :func:`..hub.options` in effect).
    With ``dry_run``, a repo that would need a download gives ``Resolved(None, card, download=plan)``.
    """
    from .. import hub

    if registry is None:  # the public boundary: the process-wide registry by default
        registry = get_registry()
    with hub.options(allow_pickle_weights=allow_pickle_weights, refresh=refresh, dry_run=dry_run):
        return _resolve_source(source, registry)


def _resolve_source(source, registry: Registry) -> Resolved:
    path = Path(source).expanduser()
    if os.path.islink(path) and not path.exists():
        raise CheckpointNotFoundError(describe_missing(path, "checkpoint folder"))
    if path.exists():
        if not path.is_dir():
            raise CheckpointNotFoundError(f"{path}: expected a checkpoint folder (with config.json), got a file")
        return Resolved(path)
    name = str(source)
    catalogue = registry.cards()
    if name in catalogue:
        from .. import cards

        card = cards.resolve(name, registry)  # schema-validated, architecture and `requires` checked
        return _resolved(cards.materialize(card), card)
    if REPO_ID.match(name):
        return _resolved(resolve_hf_repo(name))
    parts = name.split("/")
    if len(parts) > 2 and REPO_ID.match("/".join(parts[:2])) and all(re.match(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$", p) for p in parts[2:]):
        return _resolved(resolve_hf_repo("/".join(parts[:2]), subfolder="/".join(parts[2:])))  # owner/name/folder
    raise CheckpointNotFoundError(
        f"{name}: no such folder, model card or Hugging Face repo id{did_you_mean(name, catalogue.cards)}",
        hint="`zoo list` shows the model cards; a repo id looks like owner/name",
    )


def _resolved(found, card=None) -> Resolved:
    return Resolved(Path(found), card) if isinstance(found, (str, Path)) else Resolved(None, card, download=found)
