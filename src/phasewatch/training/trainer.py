"""The training loop: full-batch steps, metrics on a cadence, checkpoints, resume, NaN stop.

Step semantics: "step s" is the model after s optimiser updates. Metrics are logged at
every multiple of ``eval_every`` (and at the last step); checkpoints at every multiple
of ``checkpoint_every`` (and at the last step). A resumed run restarts from the latest
checkpoint and reproduces an uninterrupted run exactly on the deterministic CPU path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch
from torch import nn

from phasewatch.config import TrainConfig
from phasewatch.errors import RunFailed
from phasewatch.store.run import RunDir, tidy
from phasewatch.training.progress import progress_bar
from phasewatch.training.task import Task
from phasewatch.training.updates import (
    WINDOW,
    UpdateTracker,
    due,
    flatten,
    join_state,
    split_state,
)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over every parameter (weight decay included on biases and
    embeddings, as in Nanda et al. 2023): AdamW, the fused kernel where the device supports
    it; or plain SGD (no momentum)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    kwargs: dict[str, Any] = dict(
        lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(cfg.beta1, cfg.beta2)
    )
    try:
        return torch.optim.AdamW(model.parameters(), fused=True, **kwargs)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(model.parameters(), foreach=True, **kwargs)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up ``lr · min(1, step / warmup_steps)`` (Nanda et al.'s LambdaLR)."""
    if cfg.warmup_steps == 0:
        return cfg.lr
    return cfg.lr * min(1.0, step / cfg.warmup_steps)


def _format_info(metrics: dict[str, float]) -> str:
    shown = [k for k in ("train/loss", "train/acc", "test/acc") if k in metrics]
    return " ".join(f"{k}={metrics[k]:.3g}" for k in shown)


def _no_hook(run: RunDir, step: int, metrics: dict[str, float]) -> None:
    """The default ``on_metrics`` of :func:`train`: nothing."""


def _setup(
    run: RunDir, model: nn.Module, cfg: TrainConfig, resume: bool, window: int
) -> tuple[torch.optim.Optimizer, UpdateTracker, int, pd.DataFrame | None]:
    """The optimiser, the update tracker, the start step and the metric rows before it;
    with ``resume``, the model, optimiser and update window restored from the run's
    resume point (if it has one)."""
    opt = make_optimizer(model, cfg)
    tracker = UpdateTracker(sum(p.numel() for p in model.parameters()), window=window)
    point = run.resume_point() if resume else None
    if point is None:
        return opt, tracker, 0, None
    start, model_state, opt_state = point
    model.load_state_dict(model_state)
    opt_state, stored = split_state(opt_state)
    opt.load_state_dict(opt_state)
    tracker.load([stored], flatten(model.parameters())[None])
    old = run.metrics()
    return opt, tracker, start, old[old["step"] < start]


def _save(
    run: RunDir, step: int, model: nn.Module, opt: torch.optim.Optimizer, tracker: UpdateTracker
) -> None:
    """Checkpoint ``step`` (weights; optimiser state with the update window) and mark the
    run running."""
    opt_state = join_state(opt.state_dict(), tracker.state(step))
    run.save_checkpoint(step, model.state_dict(), opt_state)
    run.set_status("running", step)


def train(
    run: RunDir,
    task: Task,
    cfg: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    update_window: int = WINDOW,
    on_metrics: Callable[[RunDir, int, dict[str, float]], Any] | None = None,
) -> int:
    """Train ``task`` ``cfg.steps`` updates (metrics, checkpoints to ``run``); return ``cfg.steps``.

    Eval steps t >= ``update_window`` also log the parameter-update Gram spectrum
    ``updates/gram_*`` (:mod:`phasewatch.training.updates`; its window is checkpointed);
    each eval step's metrics also go to ``on_metrics(run, step, metrics)`` if given.

    Raises:
        RunFailed: on a non-finite training loss; the run is marked ``failed`` with the
            step, metrics up to that step are kept, and the last good checkpoint stays.
        StoreError: if ``resume`` and the run's checkpoints are corrupted.
    """
    torch.set_num_threads(cfg.num_threads)
    model = task.model
    opt, tracker, start, old = _setup(run, model, cfg, resume, update_window)
    rows: list[tuple[int, str, float]] = []

    def flush() -> None:
        """Write the metrics so far (kept rows before ``start`` and the new ones)."""
        parts = [df for df in (old, tidy(rows)) if df is not None and not df.empty]
        run.write_metrics(pd.concat(parts) if parts else tidy([]))

    with progress_bar(progress) as bar:
        task_id = bar.add_task("train", total=cfg.steps, completed=start, info="")
        for step in range(start, cfg.steps + 1):
            last = step == cfg.steps
            if tracker.on and due(step, cfg.eval_every, cfg.steps, update_window):
                tracker.observe(step, flatten(model.parameters())[None])
            if step % cfg.eval_every == 0 or last:
                values = task.evaluate() | tracker.metrics(step)[0]
                rows += [(step, k, v) for k, v in values.items()]
                (on_metrics or _no_hook)(run, step, values)  # e.g. `phasewatch run --log-to`
                bar.update(task_id, info=_format_info(values))
            if step % cfg.checkpoint_every == 0 or last:
                flush()
                _save(run, step, model, opt, tracker)
            if last:
                break
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, step)
            loss = task.train_loss(step)
            if not math.isfinite(loss.item()):
                flush()
                msg = f"non-finite training loss ({loss.item()}) at step {step}"
                run.set_status("failed", step, error=msg)
                raise RunFailed(f"{run.path}: {msg}; last good checkpoint kept")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.advance(task_id)
    return cfg.steps
