"""Running zoo across several processes or machines with ``mx.distributed`` and ``mlx.launch``.

``mlx.launch`` starts one copy of a program per rank and tells each, through environment
variables, how to reach the others (ring: ``MLX_RANK`` + ``MLX_HOSTFILE``; JACCL: ``MLX_RANK`` +
``MLX_IBV_DEVICES`` + ``MLX_JACCL_COORDINATOR``; MPI: ``OMPI_COMM_WORLD_SIZE`` / ``PMI_SIZE``;
NCCL: ``MLX_WORLD_SIZE``). :func:`world` reads them and joins the group only when there is more
than one process, so a plain ``zoo generate`` never touches the network.

:func:`sharded_load` is the distributed twin of :func:`zoo_registry.loading.load`: it builds the
model with *lazy* weights (``mx.load`` maps safetensors without reading them), shards it
(``model.shard(group)``, or :func:`zoo_registry.runtime.sharding.shard_layers` for a model built
from the runtime components that has no ``shard`` of its own), and only then evaluates the
parameters, so each rank reads and keeps just its share of the checkpoint. See
``docs/distributed.md``.

This module does not import MLX at import time.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from .errors import ConfigError, ZooError

_UNSET = object()
_world = _UNSET


class DistributedError(ZooError, RuntimeError):
    """The processes were launched as a group but could not form one."""


def _int_env(name: str) -> int:
    try:
        return int(os.environ.get(name, "") or 0)
    except ValueError:
        return 0


def _json_list_len(path_var: str) -> int:
    path = os.environ.get(path_var)
    if not path:
        return 0
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
        return len(json.loads(text)) if text else 1
    except (OSError, ValueError, TypeError):
        return 0


def launched_size() -> int:
    """How many processes the launcher says this job has (1 when not launched as a group).

    Reads only environment variables and the small files they name; never contacts other ranks.
    """
    sizes = [
        _int_env("MLX_WORLD_SIZE"),  # nccl
        _int_env("OMPI_COMM_WORLD_SIZE"),  # Open MPI
        _int_env("PMI_SIZE"),  # MPICH / Hydra
        _json_list_len("MLX_HOSTFILE"),  # ring: a JSON list with one entry per rank
        _json_list_len("MLX_IBV_DEVICES"),  # jaccl: an N x N JSON matrix
    ]
    return max([1] + sizes)


def world():
    """The global ``mx.distributed.Group`` when launched with more than one process, else ``None``.

    Joins the group (``mx.distributed.init(strict=True)``) on the first call and caches it.
    Raises :class:`DistributedError` if the launcher promised several processes but the backend
    could not connect them (a wrong hostfile, a closed port, a missing MPI library).
    """
    global _world
    if _world is not _UNSET:
        return _world
    n = launched_size()
    if n <= 1:
        _world = None
        return None
    import mlx.core as mx

    try:
        group = mx.distributed.init(strict=True)
    except RuntimeError as e:
        raise DistributedError(
            f"launched as {n} processes but mx.distributed could not form the group: {e}",
            hint="check the hostfile (IPs reachable from every host, free ports) and --backend; see docs/distributed.md",
        ) from None
    if group.size() != n:
        raise DistributedError(
            f"launched as {n} processes but the distributed group has {group.size()}",
            hint="every rank must run the same command with the same hostfile",
        )
    _world = group
    return group


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    group = world()
    return 0 if group is None else group.rank()


def size() -> int:
    """Number of processes in the job (1 when not distributed)."""
    group = world()
    return 1 if group is None else group.size()


def is_primary() -> bool:
    """True on rank 0, and in a single process: the one that prints and writes files."""
    return rank() == 0


def quiet_unless_primary() -> None:
    """On ranks other than 0, send this process's stdout and stderr to ``os.devnull``.

    Every rank runs the same command and must take part in every collective, so the others
    cannot simply skip the printing code; this keeps one copy of the output (rank 0's), as
    ``mlx_lm.generate`` under ``mlx.launch`` does. A single process is left alone.
    """
    import sys

    if is_primary():
        return
    sink = open(os.devnull, "w")
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(sink.fileno(), 1)
    os.dup2(sink.fileno(), 2)
    sys.stdout = sys.stderr = sink


def barrier(group=None) -> None:
    """Wait until every rank of ``group`` (default: :func:`world`) gets here."""
    group = group if group is not None else world()
    if group is None or group.size() == 1:
        return
    import mlx.core as mx

    mx.eval(mx.distributed.all_sum(mx.array(1.0), group=group, stream=mx.cpu))


def shard_model(model, group, *, moe_strategy: Optional[str] = None) -> None:
    """Shard ``model`` across ``group`` in place: its ``shard(group)``, else the runtime layers' rules.

    Raises :class:`ConfigError` (naming the layer, the size and the fix) when the model does not
    divide across the group; the model is then left unchanged.
    """
    if group is None or group.size() == 1:
        return
    shard = getattr(model, "shard", None)
    if callable(shard):
        if moe_strategy is None:
            shard(group)
        else:
            shard(group, moe_strategy=moe_strategy)
        return
    from .runtime.sharding import shard_layers

    layers = getattr(model, "layers", None)
    if layers is None:
        raise ConfigError(
            f"{type(model).__module__}.{type(model).__name__} cannot be sharded: it has no shard() and no layers",
            hint="run it in a single process, or give the model a shard(group) method",
        )
    shard_layers(layers, group, moe_strategy=moe_strategy or "auto")


def evaluate_parameters(model) -> None:
    """Evaluate ``model``'s parameters one tensor at a time.

    After ``shard`` each parameter is a lazy slice of a lazily loaded tensor; evaluating them one
    by one keeps at most one full checkpoint tensor (plus this rank's share) in memory, where a
    single ``mx.eval(model.parameters())`` may load a whole layer's full tensors at once.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten

    for _, value in tree_flatten(model.parameters()):
        mx.eval(value)


def sharded_load_model(source, group=None, *, moe_strategy: Optional[str] = None, **kwargs):
    """Load only this rank's share of a model: lazy load, shard, evaluate. Returns the model.

    ``group`` defaults to :func:`world`; without one this is an ordinary load. Keyword
    arguments go to :func:`zoo_registry.loading.load_model` (``lazy`` is forced on).
    """
    from .loading import load_model

    group = group if group is not None else world()
    kwargs["lazy"] = True
    out = load_model(source, **kwargs)
    model = out[0] if isinstance(out, tuple) else out
    shard_model(model, group, moe_strategy=moe_strategy)
    evaluate_parameters(model)
    barrier(group)
    return out


def sharded_load(source, group=None, *, moe_strategy: Optional[str] = None, **kwargs):
    """``(model, tokenizer)`` like :func:`zoo_registry.loading.load`, each rank holding its share.

    ``group`` defaults to :func:`world`; without one this is an ordinary (lazy, then evaluated)
    load. Keyword arguments go to :func:`zoo_registry.loading.load` (``lazy`` is forced on).
    With ``return_info=True`` returns ``(model, tokenizer, info)``.
    """
    from .loading import load

    group = group if group is not None else world()
    kwargs["lazy"] = True
    out = load(source, **kwargs)
    model = out[0]
    shard_model(model, group, moe_strategy=moe_strategy)
    evaluate_parameters(model)
    barrier(group)
    return out


class PlanGroup:
    """A group of ``size`` ranks as seen from ``rank``, with no communication: all that sharding
    reads (``size()``, ``rank()``), for planning or measuring one rank's share in a single process."""

    def __init__(self, size: int, rank: int = 0):
        self._size, self._rank = int(size), int(rank)

    def size(self) -> int:
        return self._size

    def rank(self) -> int:
        return self._rank
