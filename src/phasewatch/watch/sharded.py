"""Signals of an FSDP-sharded model: its full weights gathered into a replica on rank 0.

Under FSDP (``fully_shard``, or the older ``FullyShardedDataParallel`` wrapper) no rank
holds the model's whole weights, so the Watcher measures a *replica*: a model of the same
architecture without FSDP, which the user hands over as ``Watcher(..., replica=...)``
(a module, or a function building one, called on rank 0 only; FSDP refuses
``copy.deepcopy``, so it cannot be made from the sharded model). At the steps where rank 0
needs the weights (:meth:`Gather.due`: signals' cadences and checkpoints) **every rank**
calls :meth:`Gather.refresh`, which gathers the full state dict with PyTorch's public
distributed-checkpoint API::

    get_model_state_dict(model, options=StateDictOptions(full_state_dict=True,
                                                         cpu_offload=True))

(:mod:`torch.distributed.checkpoint.state_dict`: each sharded parameter is all-gathered
in turn; with ``cpu_offload`` only rank 0 keeps the full tensors, in CPU memory, and the
other ranks get an empty dict), and rank 0 copies them into the replica
(``load_state_dict``, strict). The signals, checkpoints and background copies then read
the replica, as they read the model in one process.

Memory on rank 0: the replica (one full copy of the weights and buffers, on the device it
was built on) plus, during each refresh, the gathered state dict (a second full copy, in
CPU memory, freed after loading). Other ranks: one full parameter at a time during the
gather. Time: one all-gather of the whole model per refresh, on every rank.

``updates/gram_*`` are not computed under FSDP: they read the weights at the W = 10 calls
before each cadence step (:mod:`phasewatch.training.updates`), which would cost W + 1
gathers per ``every`` steps instead of one.

Whether a step gathers depends only on the sequence of steps and the settings every rank
has (never on what rank 0 found), so every rank calls the collective alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from phasewatch.config import require
from phasewatch.errors import ConfigError
from phasewatch.watch.config import EXPENSIVE, WatchConfig
from phasewatch.watch.probe import LossFn, WatchedTask
from phasewatch.watch.ranks import Ranks, is_sharded, unwrap

Replica = nn.Module | Callable[[], nn.Module]
_ALLOWED = "a model of the watched one's architecture without FSDP, or a function building it"


def full_state_dict(model: nn.Module) -> dict[str, Any]:
    """The full (unsharded) state dict of an FSDP ``model`` on rank 0, in CPU memory; an
    empty dict on the other ranks. A collective: every rank must call it.

    Source: :func:`torch.distributed.checkpoint.state_dict.get_model_state_dict` with
    ``StateDictOptions(full_state_dict=True, cpu_offload=True)``.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


class Gather:
    """Rank 0's replica of an FSDP-sharded model, refreshed at the steps that need weights.

    Args:
        model: the sharded model (every rank).
        replica: a module or a function building one (rank 0 only calls it).
        ranks: this process's ranks.
        config: the Watcher's settings (cadences, checkpoints).
        signals: the signals to measure (names).

    Attributes:
        model: the sharded model.
        replica: the unsharded replica, holding the weights of the last refresh, on
            rank 0 (None on the other ranks).
        refreshes: gathers done so far (the first one when made).

    Raises:
        ConfigError: on every rank (rank 0's outcome is broadcast), naming ``replica``, if
            it is missing, not a module, sharded, or does not take the gathered state dict
            (other keys or shapes).
    """

    def __init__(
        self, model: nn.Module, replica: Replica | None, ranks: Ranks, config: WatchConfig,
        signals: list[str],
    ) -> None:  # fmt: skip
        self.model, self.ranks, self.refreshes = model, ranks, 0
        cheap = [n for n in signals if n not in EXPENSIVE]
        self.cadences = [c for c, on in ((config.every, bool(cheap)),
                                         (config.expensive_cadence, len(cheap) < len(signals)),
                                         (config.checkpoint_every, bool(config.checkpoint_every)))
                         if on]  # fmt: skip
        self.last: int | None = None
        self.replica: nn.Module | None = None
        self.agree(self._build, replica)
        self.refresh(agree=True)

    def _build(self, replica: Replica | None) -> None:
        """Rank 0: build the replica and check it."""
        require(replica is not None, "replica", _ALLOWED + " (FSDP shards the weights)", None)
        made = replica() if callable(replica) and not isinstance(replica, nn.Module) else replica
        ok = isinstance(made, nn.Module) and not is_sharded(unwrap(made))
        require(ok, "replica", _ALLOWED, type(made).__name__)
        self.replica = unwrap(made)

    def _load(self, state: dict[str, Any]) -> None:
        """Rank 0: copy the gathered ``state`` into the replica (strict)."""
        try:
            self.replica.load_state_dict(state)
        except RuntimeError as e:
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            require(False, "replica", _ALLOWED, " ".join(lines)[:300])

    def agree(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on rank 0 and raise its ConfigError on every rank (a broadcast
        when several ranks share a process group; every rank must call this)."""
        error = None
        if self.ranks.writer:
            try:
                fn(*args)
            except ConfigError as e:
                error = str(e)
        error = self.ranks.share(error)
        if error is not None:
            raise ConfigError(error)

    def due(self, step: Any) -> bool:
        """Whether ``step()`` at ``step`` gathers: a new integer step >= 0 (after the last
        one seen) that is a multiple of a cadence that reads the weights (cheap signals:
        ``every``; ``llc``/``hessian``: ``expensive_every``; ``checkpoint_every``)."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            return False
        if self.last is not None and step <= self.last:
            return False
        self.last = step
        return any(step % c == 0 for c in self.cadences)

    def refresh(self, *, agree: bool = False) -> None:
        """Gather the full weights (a collective: every rank calls it) and load them into
        rank 0's replica.

        Args:
            agree: broadcast rank 0's outcome so that every rank raises its ConfigError
                (used when made; later refreshes load the same keys and shapes).

        Raises:
            ConfigError: naming ``replica`` if it does not take the gathered state dict.
        """
        state = full_state_dict(self.model)
        self.refreshes += 1
        if agree:
            self.agree(self._load, state)
        elif self.replica is not None:
            self._load(state)


def gather_for(
    model: nn.Module, replica: Replica | None, ranks: Ranks, config: WatchConfig,
    signals: list[str],
) -> Gather | None:  # fmt: skip
    """A :class:`Gather` if ``model`` is FSDP-sharded and the Watcher reads its weights
    (signals or checkpoints), else None (``replica`` is then not used)."""
    reads = bool(signals) or bool(config.checkpoint_every)
    if not reads or not is_sharded(model):
        return None
    return Gather(model, replica, ranks, config, signals)


def measured(
    model: nn.Module, replica: Replica | None, ranks: Ranks, config: WatchConfig,
    signals: list[str], probe_batch: Any, loss_fn: LossFn | None,
) -> tuple[nn.Module, WatchedTask | None, Gather | None]:  # fmt: skip
    """What a Watcher measures: the model (rank 0's replica under FSDP), its probe task
    (None without ``loss_fn``, and on the ranks other than 0 under FSDP) and the
    :class:`Gather` (None for an unsharded model or when nothing reads the weights).

    Raises:
        ConfigError: as :class:`Gather` and :class:`~phasewatch.watch.probe.WatchedTask`;
            under FSDP rank 0's error is raised on every rank.
    """
    gather = gather_for(model, replica, ranks, config, signals)
    if gather is None:
        task = WatchedTask(model, probe_batch, loss_fn) if loss_fn is not None else None
        return model, task, None
    model = gather.replica if gather.replica is not None else model
    tasks: list[WatchedTask] = []
    if loss_fn is not None:  # rank 0 checks on its replica; every rank raises alike
        gather.agree(lambda: tasks.append(WatchedTask(model, probe_batch, loss_fn)))
    return model, (tasks[0] if tasks else None), gather


__all__ = ["Gather", "full_state_dict", "gather_for", "measured"]
