"""Dry run: what loading a source would do, from safetensors headers only (no tensor data read).

Runs the load pipeline's resolution, config checks, model build and weight sanitizing on shapes
(a repo that is not cached is not downloaded: the plan lists what would be).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

from .. import tied_head
from ..checkpoint import open_checkpoint
from ..registry import Registry, get_registry
from .builtin import build_mlx_lm
from .config import prepare
from .info import LoadInfo
from .plugin import build_model, prepare_weights
from .resolve import resolve_source


@dataclass
class Plan:
    """A dry run: what loading ``source`` would do, computed from safetensors headers.

    For a Hugging Face repo that is not (completely) cached, nothing is downloaded: ``download``
    (a :class:`.hub.DownloadPlan`) lists the files and bytes loading would fetch, and ``info`` and
    ``report`` are ``None``.
    """

    info: Optional[LoadInfo]
    report: Any
    tensors: Dict[str, Any]
    download: Optional[Any] = None

    def lines(self):
        if self.download is not None:
            return self.download.lines() + ["  (run without --dry-run to download, then --dry-run again for the load plan)"]
        out = [f"{self.info.path} (architecture {self.info.architecture}, provider {self.info.provider})", f"  {self.report.summary()}"]
        out += [f"  note: {n}" for n in self.report.notes]
        if not self.report.ok:
            out.append(self.report.table())
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def plan(source, *, config_overrides: Optional[dict] = None, registry: Optional[Registry] = None,
         allow_pickle_weights: bool = False) -> Plan:
    """Show what loading would do without reading tensor data (shapes from headers only).

    A Hugging Face repo missing from the cache is not downloaded: the plan lists what would be.
    With ``allow_pickle_weights``, pickle weights are planned from their ``data.pkl`` (shapes only)
    for plugin architectures; mlx-lm's own ones need the tensors for their ``sanitize``.
    """
    from mlx.utils import tree_flatten

    from ..sanitize import report as report_mod
    from ..sanitize.tensors import describe

    start = time.perf_counter()
    if registry is None:  # the public boundary: the process-wide registry by default
        registry = get_registry()
    first = resolve_source(source, registry, dry_run=True, allow_pickle_weights=allow_pickle_weights)
    if first.download is not None:
        return Plan(None, None, {}, download=first.download)
    registry, resolved, config, overrides, arch, normalised = prepare(source, config_overrides, registry,
                                                                       allow_pickle_weights or None)
    ckpt = open_checkpoint(resolved.path, allow_pickle_weights)
    if arch.builtin:
        model, tensors = build_mlx_lm(ckpt, config, arch.name)
        expected = {k: describe(v) for k, v in tree_flatten(model.parameters())}
        rep = report_mod.compare(expected, {k: describe(v) for k, v in tensors.items()}, source=resolved.path, architecture=arch.name)
    else:
        tied_head.before_build(ckpt, config, normalised, plan=True)
        model = build_model(arch, normalised)
        tensors, _, rep = prepare_weights(ckpt, arch, config, normalised, model, xp_kind="shapes", registry=registry)
    if ckpt.pickle_files:
        rep.notes.append(f"{len(ckpt.pickle_files)} PyTorch pickle file(s) would be read with zoo's restricted reader")
    info = LoadInfo(resolved.path, arch.name, arch.provider, normalised, rep, time.perf_counter() - start,
                    config.get("quantization"), resolved.card, config, pickle_files=ckpt.pickle_files)
    return Plan(info, rep, {k: describe(v) for k, v in tensors.items()})
