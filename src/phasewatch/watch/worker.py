"""The Watcher's background signals: expensive signals in a thread of the training process.

:meth:`Background.submit` (called by the training loop) copies the model's weights at that
step — tensors cloned in memory, nothing written to disk or serialised — and queues them;
one daemon thread loads each copy, in submission order, into its own deep copy of the
model (made once, at the first submission) and measures it with
:func:`phasewatch.signals.runner.measure_probe`, the code path of ``phasewatch measure``.
Torch releases the GIL inside its ops, so the thread runs mostly beside the training step.

**Every submitted step is measured**: :meth:`Background.finish` queues a stop mark after
the last job and waits for the thread. A signal that fails is disabled for the later
steps in submission order, so the outcome does not depend on timing. The queue holds at
most ``max_pending`` weight copies (memory: that many copies of the model's state); a
submission beyond that waits for the thread, and the wait counts as Watcher overhead.

The thread never touches the user's model, its gradients or torch's global RNG (the
signals draw from their own generators; the copy is in eval mode), so training is
unchanged.
"""

from __future__ import annotations

import copy
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from phasewatch.signals import runner
from phasewatch.watch.probe import LossFn, WatchedTask, map_tensors

Jobs = list[tuple[str, dict[str, Any]]]
_STOP = None


@dataclass
class Done:
    """One measured step: the runner's result, per-signal errors, seconds (wall, thread CPU)."""

    result: runner.StepResult
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every tensor in ``model.state_dict()`` (parameters and buffers)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict, detached (not copied) except that tensors sharing storage
    with an earlier one (tied weights) are cloned apart, as safetensors requires."""
    seen: set[int] = set()
    out = {}
    for k, v in model.state_dict().items():
        ptr = v.untyped_storage().data_ptr()
        out[k] = v.detach().clone() if ptr in seen else v.detach()
        seen.add(ptr)
    return out


class Background:
    """A worker thread measuring ``jobs`` on copies of ``model`` at submitted steps.

    Args:
        model: the user's model (only read, in :meth:`submit`, on the training thread).
        batch: the probe batch (cloned once).
        loss_fn: ``loss_fn(model, batch)`` as for :class:`~phasewatch.watch.probe.WatchedTask`.
        max_pending: queued weight copies at most before :meth:`submit` waits.
    """

    def __init__(
        self, model: nn.Module, batch: Any, loss_fn: LossFn, *, max_pending: int = 4
    ) -> None:
        self.model, self.loss_fn = model, loss_fn
        self.batch = map_tensors(batch, lambda t: t.detach().clone())
        self.todo: queue.Queue = queue.Queue(maxsize=max_pending)
        self.done: queue.Queue = queue.Queue()
        self.thread: threading.Thread | None = None
        self.submitted: list[int] = []
        self.collected: set[int] = set()

    def _start(self) -> None:
        shadow = copy.deepcopy(self.model).eval()
        for p in shadow.parameters():
            p.grad = None
        task = WatchedTask(shadow, self.batch, self.loss_fn)
        self.thread = threading.Thread(
            target=self._serve, args=(task,), name="phasewatch-watch", daemon=True
        )
        self.thread.start()

    def submit(self, step: int, jobs: Jobs) -> None:
        """Queue the model's current weights as step ``step`` for ``jobs``.

        Raises:
            Exception: whatever ``copy.deepcopy(model)`` raises at the first submission
                (e.g. a model holding a lock or an open file); nothing is queued then.
        """
        if self.thread is None:
            self._start()
        self.todo.put((step, weights(self.model), jobs))
        self.submitted.append(step)

    def _serve(self, task: WatchedTask) -> None:
        disabled: dict[str, str] = {}
        while (item := self.todo.get()) is not _STOP:
            step, state, jobs = item
            jobs = [(n, f) for n, f in jobs if n not in disabled]
            errors: dict[str, str] = {}
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                with torch.enable_grad():
                    task.model.load_state_dict(state)
                    probe = runner.make_probe(task, step)
                    res = runner.measure_probe(probe, jobs, errors=errors)
            except Exception as e:  # the probe cannot be built: every job of the step fails
                res = runner.StepResult(step)
                errors.update({n: f"{type(e).__name__}: {e}" for n, _ in jobs})
            disabled.update(errors)
            dt, dc = time.perf_counter() - t0, time.thread_time() - c0
            self.done.put(Done(res, errors, dt, dc))

    def poll(self) -> list[Done]:
        """Results measured so far and not yet collected, in step order (non-blocking)."""
        out = []
        while True:
            try:
                d = self.done.get_nowait()
            except queue.Empty:
                return out
            self.collected.add(d.result.step)
            out.append(d)

    def finish(self) -> tuple[list[Done], list[int]]:
        """Wait until every submitted step is measured; stop the thread.

        Returns:
            ``(results not yet collected in step order, submitted steps without result)``;
            steps are missing only if the thread died.
        """
        if self.thread is not None:
            self.todo.put(_STOP)
            self.thread.join()
            self.thread = None
        results = self.poll()
        return results, [s for s in self.submitted if s not in self.collected]
