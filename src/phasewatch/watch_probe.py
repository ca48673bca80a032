"""The probe of a watched run: the user's model, a fixed probe batch and a loss function.

:class:`WatchedTask` gives a user's model the task interface the signal runner measures
(:mod:`phasewatch.signals.runner`): ``train_loss(step)`` is the loss on the probe batch,
``per_sample_loss(step)`` exists when the loss function returns one loss per sample.
The :class:`~phasewatch.watch.Watcher` measures it in the training process; it also
stores it as ``<run>/watch/probe.pkl`` (model, batch and loss function, serialised with
``cloudpickle`` so models and functions defined in a script travel too), from which
``phasewatch measure`` and the Watcher's background worker rebuild it on the stored
checkpoints. Loading that file runs code from it (it is a pickle): only load runs you trust.

Loss functions take ``(model, batch)`` and return per-sample losses ``(n,)`` in nats or
their mean; ready-made ones: :func:`cross_entropy` (``batch = (x, y)``) and :func:`hf_loss`
(a Hugging Face model called on a dict batch with ``labels``).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from phasewatch.errors import ConfigError, StoreError
from phasewatch.store import RunDir
from phasewatch.store.atomic import atomic_path

PROBE_FILE = "watch/probe.pkl"
LossFn = Callable[[nn.Module, Any], Tensor]


def cross_entropy(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Per-sample cross-entropy (nats) of ``model(x)`` against integer labels ``y``.

    Args:
        batch: ``(x, y)`` with ``model(x)`` logits ``(n, classes)`` or ``(n, ..., classes)``
            and ``y`` of shape ``(n,)`` or ``(n, ...)``.

    Returns:
        ``(n,)`` losses (averaged over any positions).
    """
    x, y = batch
    logits = model(x)  # (n, ..., C)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
    return loss.reshape(y.shape[0], -1).mean(1)


def hf_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """The scalar loss (nats per token) a Hugging Face model returns for ``model(**batch)``."""
    return model(**batch).loss


def batch_size(batch: Any) -> int | None:
    """Leading dimension of the first tensor in ``batch`` (a tensor, sequence or dict)."""
    if torch.is_tensor(batch):
        return int(batch.shape[0]) if batch.ndim else None
    items = batch.values() if isinstance(batch, dict) else batch
    if isinstance(items, (list, tuple)) or isinstance(batch, dict):
        for v in items:
            n = batch_size(v)
            if n is not None:
                return n
    return None


class WatchedTask:
    """A user's model as a signal-runner task (see module docstring).

    Raises:
        ConfigError: if ``loss_fn(model, batch)`` fails, does not return a finite float
            tensor of shape () or (n,), or the probe size cannot be told.
    """

    def __init__(self, model: nn.Module, batch: Any, loss_fn: LossFn) -> None:
        self.model, self.batch, self.loss_fn = model, batch, loss_fn
        try:
            with torch.no_grad():
                out = loss_fn(model, batch)
        except Exception as e:
            raise ConfigError(
                f"loss_fn(model, probe_batch) failed ({type(e).__name__}: {e}); allowed: a "
                "function (model, batch) -> per-sample losses (n,) or their mean"
            ) from e
        ok = torch.is_tensor(out) and out.ndim <= 1 and out.is_floating_point()
        if not ok or not bool(torch.isfinite(out).all()):
            got = out.shape if torch.is_tensor(out) else type(out).__name__
            raise ConfigError(
                f"loss_fn returned {got}; allowed: a finite float tensor of shape () or (n,)"
            )
        self.per_sample = out.ndim == 1
        self.probe_size = int(out.shape[0]) if self.per_sample else batch_size(batch)
        if not self.probe_size:
            raise ConfigError(
                "probe_batch: cannot tell its size n; allowed: a tensor, tuple/list or dict "
                "of tensors with a leading batch dimension"
            )
        if self.per_sample:
            self.per_sample_loss = lambda step: self.loss_fn(self.model, self.batch)

    def train_loss(self, step: int) -> Tensor:
        """Mean loss (nats) of the model's current weights on the probe batch."""
        out = self.loss_fn(self.model, self.batch)
        return out.mean() if out.ndim else out

    def evaluate(self) -> dict[str, float]:
        return {}


def save_probe(run: RunDir, task: WatchedTask) -> None:
    """Write ``<run>/watch/probe.pkl`` (atomically).

    Raises:
        Exception: whatever serialisation raises (e.g. an object holding a lock or a file).
    """
    import cloudpickle

    (run.path / "watch").mkdir(exist_ok=True)
    blob = cloudpickle.dumps({"model": task.model, "batch": task.batch, "loss_fn": task.loss_fn})
    with atomic_path(run.path / PROBE_FILE) as tmp:
        tmp.write_bytes(blob)


def load_task(run: RunDir) -> WatchedTask:
    """The :class:`WatchedTask` stored in a watched run (weights: the model's at save time).

    Raises:
        StoreError: if the probe file is missing or cannot be loaded here.
    """
    f = run.path / PROBE_FILE
    if not f.exists():
        raise StoreError(
            f"{run.path}: no {PROBE_FILE}; the Watcher could not store its probe (see "
            "events.json watch.problems), so signals can only be measured during training"
        )
    try:
        data = pickle.loads(f.read_bytes())
    except Exception as e:
        raise StoreError(f"{f}: cannot be loaded here ({type(e).__name__}: {e})") from e
    return WatchedTask(data["model"], data["batch"], data["loss_fn"])
