"""A Hugging Face ``transformers.TrainerCallback`` that runs a :class:`~phasewatch.watch.Watcher`.

::

    from phasewatch.watch.hf import WatcherCallback
    trainer = Trainer(model, args, train_dataset=ds,
                      callbacks=[WatcherCallback("runs/hf", probe_batch=batch, every=50)])
    trainer.train()        # writes runs/hf; `phasewatch report runs/hf`

The Watcher is created at ``on_train_begin`` with the Trainer's model and planned steps
(``state.max_steps``), steps at every optimiser update (``on_step_end``, step =
``state.global_step``), receives the Trainer's logs (``loss`` → ``train/loss``,
``eval_loss`` → ``eval/loss``, ...) and is closed at ``on_train_end``. The default loss is
:func:`phasewatch.watch.probe.hf_loss` (the model's own loss on a dict batch with
``labels``). Needs the optional extra ``phasewatch[hf]``.

Under ``torch.distributed`` every rank runs the callback: rank 0 writes the run and the
others follow (:mod:`phasewatch.watch.ranks`); the Trainer's logs are already means over
the ranks, so they are handed over as they are. Under FSDP give ``replica=`` (a model of
the same architecture without FSDP, or a function building one): rank 0 measures the
gathered weights in it (:mod:`phasewatch.watch.sharded`). Tested under ``torchrun
--nproc_per_node 2`` (gloo, CPU; DDP) in tests/unit/test_watch_distributed.py.

Raises:
    MissingDependency: on import, if ``transformers`` is not installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from phasewatch.errors import MissingDependency

try:
    from transformers import TrainerCallback
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise MissingDependency(
        "phasewatch.watch.hf needs transformers: pip install 'phasewatch[hf]'"
    ) from e

from phasewatch.watch.probe import LossFn, hf_loss
from phasewatch.watch.watcher import Watcher

_SKIP = {"epoch", "total_flos", "step"}


def log_metrics(logs: dict[str, Any]) -> dict[str, float]:
    """Trainer logs as slash keys: ``eval_loss`` → ``eval/loss``, ``loss`` → ``train/loss``;
    non-numbers, bookkeeping keys and the end-of-training summary (``train_*``) dropped."""
    out = {}
    for k, v in logs.items():
        if k in _SKIP or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if k.startswith("eval_"):
            out[f"eval/{k[5:]}"] = float(v)
        elif not k.startswith("train_"):  # train_* is the end-of-training summary
            out[f"train/{k}"] = float(v)
    return out


class WatcherCallback(TrainerCallback):
    """Watch a ``transformers.Trainer`` run (see module docstring).

    Args:
        out: the run directory to create.
        probe_batch: a fixed dict batch (``input_ids``, ``labels``, ...) on the model's device.
        loss_fn: ``loss_fn(model, batch)``; default :func:`~phasewatch.watch.probe.hf_loss`.
        **kwargs: any other :class:`~phasewatch.watch.Watcher` argument: ``on_warning``,
            ``config=WatchConfig(...)`` or WatchConfig fields (``signals``, ``every``,
            ``target``, ...).
    """

    def __init__(
        self,
        out: str | Path,
        *,
        probe_batch: Any = None,
        loss_fn: LossFn = hf_loss,
        **kwargs: Any,
    ) -> None:
        self.out, self.probe_batch, self.loss_fn, self.kwargs = out, probe_batch, loss_fn, kwargs
        self.watch: Watcher | None = None

    def on_train_begin(self, args, state, control, model=None, **kw):
        """Create the Watcher on the Trainer's ``model``, planned steps ``state.max_steps``
        (unless ``steps=`` was given).

        Raises:
            ConfigError: on an invalid Watcher argument (see :class:`~phasewatch.watch.Watcher`).
        """
        self.watch = Watcher(
            model,
            out=self.out,
            steps=self.kwargs.pop("steps", None) or int(state.max_steps) or None,
            probe_batch=self.probe_batch,
            loss_fn=self.loss_fn if self.probe_batch is not None else None,
            **self.kwargs,
        )

    def on_step_end(self, args, state, control, **kw):
        """Step the Watcher after each optimiser update (step = ``state.global_step``)."""
        if self.watch is not None:
            self.watch.step(int(state.global_step))

    def on_log(self, args, state, control, logs=None, **kw):
        """Hand the Trainer's ``logs`` to the Watcher as slash keys (:func:`log_metrics`)."""
        if self.watch is not None and logs:
            self.watch.step(int(state.global_step), log_metrics(logs))

    def on_train_end(self, args, state, control, **kw):
        """Close the Watcher: the run directory is complete."""
        if self.watch is not None:
            self.watch.close()
