"""The Watcher under ``torch.distributed`` (DDP, FSDP; plain PyTorch, HF Trainer, Lightning).

Every rank runs the same training loop, so every rank makes a Watcher and calls its
``step()`` and ``close()``. What each rank does:

- **Rank 0 writes**: the one run directory (config, metrics, signals, checkpoints,
  events), the probe batch and the trackers (``log_to``/``loggers``). Other ranks check
  their arguments the same way, then only follow: they write nothing.
- **Metrics are rank 0's** as handed to ``step()``. Values that differ between ranks
  (each rank's own training loss on its shard of the batch; evaluation metrics of a
  sharded evaluation set) are reduced by the caller with :func:`mean_across_ranks` (every
  rank calls it). HF Trainer's logs are already means over ranks; the Lightning callback
  averages ``callback_metrics`` over ranks itself (:mod:`phasewatch.watch.lightning`).
  Values equal on every rank (an evaluation of the full set on each rank) need nothing.
- **Signals are measured on rank 0's replica**: under DDP every rank holds the same
  weights, so rank 0's are the model's. A ``DistributedDataParallel`` wrapper is unwrapped
  (:func:`unwrap`): signals run on ``.module`` so that their backward passes never enter
  DDP's gradient all-reduce, which the other ranks would wait for. FSDP shards the
  weights, so no rank holds them whole: at the steps that read them every rank gathers
  the full weights and rank 0 loads them into a ``replica`` the user provides, which it
  measures (:mod:`phasewatch.watch.sharded`).
- **Warnings are broadcast**: at each step that is a multiple of ``every`` and at
  ``close()``, rank 0 broadcasts the early warnings raised since the last broadcast and
  every other rank hands them to its own ``on_warning`` (default there: nothing; rank 0
  logs them). ``close()`` returns the same ``watch`` block on every rank.

The broadcasts are collectives, so every rank must call ``step()`` with the same steps
and ``close()`` once (as DDP training loops and the framework callbacks do); whether a
step broadcasts depends only on the sequence of steps (:meth:`Sync.due`), never on what
rank 0 found. Ranks come from ``torch.distributed`` once its process group is
initialised; before that from the ``RANK``/``WORLD_SIZE`` variables ``torchrun`` sets
(rank 0 then writes, but nothing is broadcast).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

_log = logging.getLogger("phasewatch.watch")


def _initialised() -> bool:
    """Whether ``torch.distributed`` has a default process group."""
    return dist.is_available() and dist.is_initialized()


@dataclass(frozen=True)
class Ranks:
    """This process's place in a distributed run.

    Attributes:
        rank: the global rank (0 in a single process).
        world: the number of processes (1 in a single process).
        collective: whether ``torch.distributed`` is initialised (warnings are broadcast).
    """

    rank: int = 0
    world: int = 1
    collective: bool = False

    @property
    def writer(self) -> bool:
        """Whether this rank writes the run directory (rank 0)."""
        return self.rank == 0

    @property
    def shared(self) -> bool:
        """Whether objects are broadcast between ranks (several ranks, a process group)."""
        return self.collective and self.world > 1

    def share(self, obj: Any) -> Any:
        """``obj`` as rank 0 has it, on every rank (a broadcast; every rank must call it).

        Without a process group of several ranks it returns ``obj`` unchanged.
        """
        if not self.shared:
            return obj
        box = [obj if self.writer else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def ranks() -> Ranks:
    """This process's :class:`Ranks`: from ``torch.distributed`` if initialised, else from
    the ``RANK``/``WORLD_SIZE`` environment variables (``torchrun``), else a single process.
    """
    if _initialised():
        return Ranks(dist.get_rank(), dist.get_world_size(), True)
    try:
        return Ranks(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return Ranks()


def unwrap(model: nn.Module) -> nn.Module:
    """The module a ``DistributedDataParallel`` (or ``DataParallel``) wrapper trains, else
    ``model`` itself (same parameters: signals then run outside DDP's gradient hooks)."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    return model.module if isinstance(model, wrappers) else model


def is_sharded(model: nn.Module) -> bool:
    """Whether ``model`` (or a submodule) is FSDP-sharded (``FullyShardedDataParallel`` or
    ``fully_shard``): no rank holds its whole weights. Looked up only if the user's code
    has imported FSDP (importing it here would cost seconds)."""
    fsdp = sys.modules.get("torch.distributed.fsdp")
    names = ("FullyShardedDataParallel", "FSDPModule")
    kinds = tuple(getattr(fsdp, n) for n in names if hasattr(fsdp, n))
    return bool(kinds) and any(isinstance(m, kinds) for m in model.modules())


def mean_across_ranks(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Each metric averaged over the ranks that logged it (every rank must call this, at the
    same points of the loop); unchanged without a process group of several ranks.

    Args:
        metrics: flat slash-keyed numbers (floats, ints, 0-d tensors) of this rank.

    Returns:
        ``{key: mean over the ranks that have key}``, the same dict on every rank; values
        that are not numbers are dropped.
    """
    mine: dict[str, float] = {}
    for k, v in metrics.items():
        try:
            mine[k] = float(v.item() if torch.is_tensor(v) else v)
        except (TypeError, ValueError, RuntimeError):
            continue
    r = ranks()
    if not r.shared:
        return mine
    every: list[Any] = [None] * r.world
    dist.all_gather_object(every, mine)
    keys = sorted({k for d in every for k in d})
    return {k: sum(d[k] for d in every if k in d) / sum(k in d for d in every) for k in keys}


class Sync:
    """When the ranks exchange: at each new step that is a multiple of ``every``.

    Args:
        ranks: this process's ranks.
        every: the Watcher's cadence, in steps.
    """

    def __init__(self, ranks: Ranks, every: int) -> None:
        self.ranks, self.every = ranks, every
        self.last: int | None = None

    def due(self, step: Any) -> bool:
        """Whether ``step()`` at ``step`` exchanges: an integer >= 0 after the last one
        seen, a multiple of ``every``, with several ranks in a process group. A pure
        function of the sequence of steps, so every rank decides alike."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            return False
        if self.last is not None and step <= self.last:
            return False
        self.last = step
        return self.ranks.shared and step % self.every == 0


class Relay:
    """Early warnings to the user on every rank (the module's "Warnings are broadcast").

    Rank 0's detector calls :meth:`warned` with each new warning: it goes to the trackers
    and ``on_warning`` and is queued; :meth:`exchange` broadcasts the queue (or, at close,
    ``(queue, watch block)``) and the other ranks hand the warnings to their ``on_warning``.

    Args:
        ranks: this process's ranks.
        on_warning: the user's callback (None: rank 0 logs each warning, others do nothing).
        problem: ``problem(kind, message)`` reports a failure (a raising callback, a failed
            broadcast); nothing here raises.
    """

    def __init__(
        self, ranks: Ranks, on_warning: Callable[[Any], Any] | None, problem: Callable
    ) -> None:
        self.ranks, self.user, self.problem = ranks, on_warning, problem
        self.pending: list[Any] = []  # raised since the last broadcast
        self.text: Callable[[Any], Any] = lambda w: None  # rank 0: to the trackers

    def warned(self, w: Any) -> None:
        """A new warning on rank 0: to the trackers and ``on_warning``, queued to share."""
        self.pending.append(w)
        self.text(w)
        self.hand(w)

    def hand(self, w: Any) -> None:
        """``on_warning(w)`` (default: log it on rank 0, nothing on the others)."""
        try:
            if self.user is not None or self.ranks.writer:
                (self.user or (lambda w: _log.warning("phasewatch: %s", w)))(w)
        except Exception as e:
            self.problem("on_warning", f"on_warning raised {type(e).__name__}: {e}")

    def exchange(self, payload: Any) -> Any:
        """Broadcast rank 0's ``payload`` (its queued warnings, or ``(warnings, block)``);
        other ranks hand the warnings on. Returns rank 0's payload."""
        try:
            got = self.ranks.share(payload)
        except Exception as e:
            self.problem("distributed", f"broadcast from rank 0 failed: {e!r}")
            return payload
        self.pending = []
        for w in (got[0] if isinstance(got, tuple) else got) if not self.ranks.writer else []:
            self.hand(w)
        return got


__all__ = [
    "Ranks",
    "Relay",
    "Sync",
    "is_sharded",
    "mean_across_ranks",
    "ranks",
    "unwrap",
]
