"""Batched seeds: sweep members that share a model shape train as one stacked model.

Every parameter of the K members is stacked along a new leading member dimension, like
the instance dimension of the Toy Models of Superposition notebook (Elhage et al. 2022).
One forward/backward pass computes all K losses, and :class:`StackedAdamW` applies
AdamW with each member's own learning rate, warm-up, weight decay and betas. Each
member keeps its own seed (initialisation and data) and its own run directory: metrics,
checkpoints and optimiser state are written exactly as :func:`~phasewatch.training.train`
writes them, so a member resumes as an ordinary run and vice versa. That includes the
``updates/…`` Gram spectrum of parameter updates (:mod:`phasewatch.training.updates`): one
:class:`~phasewatch.training.updates.UpdateTracker` with a member dimension, equal to a
single run's within float round-off, its window stored with each member's optimiser state.

A phenomenon opts in with a ``batch_fields`` attribute (config fields, beyond
:data:`TRAIN_FIELDS`, that may differ inside a batch) and a task that provides either

* ``stacked_loss(tasks, params, step)`` (a static method): the (K,) losses from the
  stacked parameters ``{name: (K, *shape)}`` (superposition: its instances are
  concatenated), or
* ``train_batch(step)`` (the member's data tensors for update ``step``) and
  ``loss_on(*batch)`` (the loss from those tensors and ``self.model`` only); the batch
  is then computed with :func:`torch.func.vmap` over :func:`torch.func.functional_call`.
  Member batches of different lengths are zero-padded along dim 0, so ``loss_on`` must
  give all-zero rows no weight (grokking passes a 0/1 weight per training pair, which
  is how members with different ``train_frac`` share a batch).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from phasewatch.config import TrainConfig
from phasewatch.store.run import RunDir, tidy
from phasewatch.training.progress import progress_bar
from phasewatch.training.trainer import learning_rate, make_optimizer
from phasewatch.training.updates import (
    WINDOW,
    UpdateTracker,
    due,
    flatten,
    join_state,
    split_state,
)

# TrainConfig fields that may differ between the members of one batch (per-member AdamW).
TRAIN_FIELDS = ("seed", "lr", "weight_decay", "beta1", "beta2", "warmup_steps")
MAX_BATCH = 16  # members per batch: enough to amortise per-step overhead on small models

LossFn = Callable[[dict[str, Tensor], int], Tensor]


def can_batch(phen: Any) -> bool:
    """Whether phenomenon ``phen`` declares batched training (``batch_fields``)."""
    return hasattr(phen, "batch_fields")


def batch_key(phen: Any, cfg: dict[str, Any]) -> str | None:
    """A string equal for run configs (``config.json`` dicts) that can share a batch: equal
    in every field except :data:`TRAIN_FIELDS` and ``phen.batch_fields``; None if the
    phenomenon cannot batch (or the run trains with an optimiser other than AdamW, the one
    the batched path implements)."""
    if not can_batch(phen) or cfg["train"].get("optimizer", "adamw") != "adamw":
        return None
    free = set(TRAIN_FIELDS) | set(phen.batch_fields)
    task = {k: v for k, v in cfg["task"].items() if k not in free}
    train = {k: v for k, v in cfg["train"].items() if k not in free}
    return json.dumps([cfg["phenomenon"], task, train], sort_keys=True)


def _pad_stack(tensors: Sequence[Tensor]) -> Tensor:
    """Stack along a new dim 0, zero-padding dim 0 of shorter tensors to the longest."""
    n = max(len(t) for t in tensors)
    if all(len(t) == n for t in tensors):
        return torch.stack(list(tensors))
    out = tensors[0].new_zeros((len(tensors), n, *tensors[0].shape[1:]))
    for k, t in enumerate(tensors):
        out[k, : len(t)] = t
    return out


class _LossModule(nn.Module):
    """``forward(*batch) = task.loss_on(*batch)`` with the task's model as a submodule, so
    that :func:`functional_call` can swap in one member's parameters."""

    def __init__(self, task: Any) -> None:
        super().__init__()
        self.model = task.model
        self.loss_on = task.loss_on

    def forward(self, *batch: Tensor) -> Tensor:
        """The task's scalar loss (nats) on ``batch``."""
        return self.loss_on(*batch)


def loss_function(tasks: Sequence[Any]) -> LossFn:
    """``f(params, step) -> (K,)`` member losses (nats) for stacked ``params``."""
    first = tasks[0]
    if hasattr(first, "stacked_loss"):
        return lambda params, step: first.stacked_loss(tasks, params, step)
    module = _LossModule(first)

    def one(params: dict[str, Tensor], *batch: Tensor) -> Tensor:
        """One member's scalar loss from its parameters ``{name: shape}`` and data."""
        return functional_call(module, {f"model.{k}": v for k, v in params.items()}, batch)

    batched = vmap(one)

    def f(params: dict[str, Tensor], step: int) -> Tensor:
        """The (K,) losses of update ``step``: the members' batches, padded and stacked."""
        per_member = [t.train_batch(step) for t in tasks]
        return batched(params, *(_pad_stack(parts) for parts in zip(*per_member)))

    return f


class StackedAdamW:
    """AdamW (Loshchilov & Hutter 2019, torch's update order) on stacked parameters,
    with each member's learning rate (and warm-up), weight decay and betas.

    State per parameter: ``exp_avg`` and ``exp_avg_sq`` of the stacked shape; one step
    count per member. Members marked dead (:meth:`kill`) are zeroed and no longer move.
    """

    eps = 1e-8

    def __init__(self, params: dict[str, Tensor], cfgs: Sequence[TrainConfig]) -> None:
        self.params, self.cfgs = params, list(cfgs)
        self.m = {n: torch.zeros_like(p) for n, p in params.items()}
        self.v = {n: torch.zeros_like(p) for n, p in params.items()}
        self.t = [0] * len(cfgs)
        self.alive = [True] * len(cfgs)

    def _col(self, values: list[float], like: Tensor) -> Tensor:
        """Per-member scalars as a (K, 1, ..., 1) tensor broadcasting against ``like``."""
        return torch.tensor(values, dtype=like.dtype).view(-1, *[1] * (like.dim() - 1))

    @torch.no_grad()
    def step(self, step: int) -> None:
        """One update with the gradients in ``.grad`` (learning rates of update ``step``)."""
        self.t = [t + a for t, a in zip(self.t, self.alive)]
        cfgs, ts = self.cfgs, [max(t, 1) for t in self.t]
        lr = [learning_rate(c, step) if a else 0.0 for c, a in zip(cfgs, self.alive)]
        decay = [1 - lr_k * c.weight_decay for lr_k, c in zip(lr, cfgs)]
        step_size = [lr_k / (1 - c.beta1**t) for lr_k, c, t in zip(lr, cfgs, ts)]
        bc2 = [math.sqrt(1 - c.beta2**t) for c, t in zip(cfgs, ts)]
        for name, p in self.params.items():
            g = p.grad
            if not all(self.alive):
                g = torch.where(self._col(self.alive, p).bool(), g, 0.0)
            m, v = self.m[name], self.v[name]
            p.mul_(self._col(decay, p))
            m.lerp_(g, self._col([1 - c.beta1 for c in self.cfgs], p))
            v.mul_(self._col([c.beta2 for c in self.cfgs], p))
            v.addcmul_(g, g * self._col([1 - c.beta2 for c in self.cfgs], p))
            denom = (v.sqrt() / self._col(bc2, p)).add_(self.eps)
            p.addcdiv_(m * self._col(step_size, p), denom, value=-1.0)

    @torch.no_grad()
    def kill(self, k: int) -> None:
        """Stop member ``k`` (e.g. after a non-finite loss): zero its weights and state."""
        self.alive[k] = False
        for d in (self.params, self.m, self.v):
            for t in d.values():
                t[k].zero_()

    def member_state(self, k: int, template: torch.optim.Optimizer) -> dict[str, Any]:
        """Member ``k``'s state in the format of ``torch.optim.AdamW.state_dict()``
        (``template``: an AdamW over the member's own model, for its param_groups)."""
        state = {
            i: {
                "step": torch.tensor(float(self.t[k])),
                "exp_avg": self.m[n][k].clone(),
                "exp_avg_sq": self.v[n][k].clone(),
            }
            for i, n in enumerate(self.params)
        }
        return {"state": state, "param_groups": template.state_dict()["param_groups"]}

    @torch.no_grad()
    def load_member(self, k: int, state: dict[str, Any]) -> None:
        """Restore member ``k`` from an AdamW state dict (as stored in a checkpoint)."""
        for i, n in enumerate(self.params):
            s = state["state"][i]
            self.m[n][k].copy_(s["exp_avg"].reshape(self.m[n][k].shape))
            self.v[n][k].copy_(s["exp_avg_sq"].reshape(self.v[n][k].shape))
            self.t[k] = int(float(s["step"]))


def stack_models(tasks: Sequence[Any]) -> dict[str, Tensor]:
    """Stack the members' parameters ``{name: (K, *shape)}`` (leaf tensors that require
    grad) and make each member's parameters views of its slice, so that ``evaluate()``
    and ``state_dict()`` of a member's task always see the current weights."""
    names = [n for n, _ in tasks[0].model.named_parameters()]
    params = {
        n: torch.stack([t.model.get_parameter(n).detach() for t in tasks]).requires_grad_()
        for n in names
    }
    for k, t in enumerate(tasks):
        for n in names:
            t.model.get_parameter(n).data = params[n].data[k]
    return params


class _Member:
    """One member's run directory, task and metric rows (the trainer's bookkeeping)."""

    def __init__(self, run: RunDir, task: Any, cfg: TrainConfig, start: int) -> None:
        self.run, self.task, self.cfg = run, task, cfg
        old = run.metrics() if start > 0 else None
        self.old = None if old is None else old[old["step"] < start]
        self.rows: list[tuple[int, str, float]] = []

    def flush(self) -> None:
        """Write the member's metrics so far (kept rows before the start and new ones)."""
        parts = [df for df in (self.old, tidy(self.rows)) if df is not None and not df.empty]
        self.run.write_metrics(pd.concat(parts) if parts else tidy([]))

    def evaluate(self, step: int, extra: dict[str, float] | None = None) -> None:
        """Record the task's metrics at ``step`` and then ``extra`` (the ``updates/…``
        values), written by the next :meth:`flush`."""
        values = self.task.evaluate() | (extra or {})
        self.rows += [(step, n, v) for n, v in values.items()]

    def checkpoint(self, step: int, optim_state: dict[str, Any]) -> None:
        """Flush the metrics, save weights and ``optim_state`` at ``step``, mark running."""
        self.flush()
        weights = {n: v.clone() for n, v in self.task.model.state_dict().items()}
        self.run.save_checkpoint(step, weights, optim_state)
        self.run.set_status("running", step)

    def fail(self, step: int, loss: float) -> None:
        """Flush the metrics and mark the run ``failed`` by a non-finite ``loss`` at ``step``."""
        self.flush()
        msg = f"non-finite training loss ({loss}) at step {step}"
        self.run.set_status("failed", step, error=msg)


def _stack(
    tasks: Sequence[Any],
    cfgs: Sequence[TrainConfig],
    states: Sequence[tuple[dict[str, Tensor], dict] | None] | None,
) -> tuple[dict[str, Tensor], StackedAdamW]:
    """The stacked parameters ``{name: (K, *shape)}`` and their optimiser, restored from
    the members' ``(model_state, optimizer_state)`` if ``states`` is given."""
    if states is not None:
        for t, st in zip(tasks, states):
            t.model.load_state_dict(st[0])
    params = stack_models(tasks)
    opt = StackedAdamW(params, cfgs)
    if states is not None:
        for k, st in enumerate(states):
            opt.load_member(k, st[1])
    return params, opt


def _tracker(
    params: dict[str, Tensor],
    states: Sequence[tuple[dict[str, Tensor], dict] | None] | None,
    window: int,
) -> UpdateTracker:
    """The members' update tracker (:mod:`phasewatch.training.updates`), its windows
    restored from the members' optimiser states if ``states`` is given."""
    k = len(next(iter(params.values())))
    flat = flatten(params.values(), k)  # (K, P)
    tracker = UpdateTracker(flat.shape[1], members=k, window=window)
    if states is not None:
        tracker.load([split_state(st[1])[1] for st in states], flat)
    return tracker


def train_batched(
    runs: Sequence[RunDir],
    tasks: Sequence[Any],
    cfgs: Sequence[TrainConfig],
    *,
    start: int = 0,
    states: Sequence[tuple[dict[str, Tensor], dict] | None] | None = None,
    progress: bool = False,
    update_window: int = WINDOW,
) -> list[str]:
    """Train K members as one stacked model; write each member's run directory.

    Args:
        runs, tasks, cfgs: per member, its run directory, built task and TrainConfig;
            ``steps``, ``eval_every`` and ``checkpoint_every`` must be equal.
        start: the step all members resume from (0 = fresh).
        states: per member, ``(model_state, optimizer_state)`` at ``start`` (resume).
        progress: show a progress bar.
        update_window: W, the updates in each Gram window.

    Returns:
        Per member ``"trained"`` or ``"failed"`` (a non-finite loss: the member's status
        is ``failed`` with the step, its last good checkpoint kept; the others go on).
    """
    c0 = cfgs[0]
    torch.set_num_threads(c0.num_threads)
    members = [_Member(r, t, c, start) for r, t, c in zip(runs, tasks, cfgs)]
    params, opt = _stack(tasks, cfgs, states)
    tracker = _tracker(params, states, update_window)
    templates = [make_optimizer(t.model, c) for t, c in zip(tasks, cfgs)]
    loss_fn = loss_function(tasks)
    with progress_bar(progress) as bar:
        bar_id = bar.add_task(f"train x{len(tasks)}", total=c0.steps, completed=start, info="")
        for step in range(start, c0.steps + 1):
            last = step == c0.steps
            live = [k for k, a in enumerate(opt.alive) if a]
            if tracker.on and due(step, c0.eval_every, c0.steps, update_window):
                tracker.observe(step, flatten(params.values(), len(tasks)))
            if step % c0.eval_every == 0 or last:
                gram = tracker.metrics(step)
                for k in live:
                    members[k].evaluate(step, gram[k])
            if step % c0.checkpoint_every == 0 or last:
                for k in live:
                    state = join_state(opt.member_state(k, templates[k]), tracker.state(step, k))
                    members[k].checkpoint(step, state)
            if last or not live:
                break
            losses = loss_fn(params, step)  # (K,)
            values = losses.detach().tolist()
            losses.sum().backward()
            for k in live:
                if not math.isfinite(values[k]):
                    members[k].fail(step, values[k])
                    opt.kill(k)
            opt.step(step)
            for p in params.values():
                p.grad = None
            bar.advance(bar_id)
    return ["trained" if a else "failed" for a in opt.alive]


def _time_steps(step_fn: Callable[[int], None], budget_s: float, min_steps: int = 2) -> float:
    """Seconds per call of ``step_fn`` (one warm-up call excluded), over ``budget_s``."""
    step_fn(0)
    t0, n = time.perf_counter(), 0
    while n < min_steps or time.perf_counter() - t0 < budget_s:
        n += 1
        step_fn(n)
    return (time.perf_counter() - t0) / n


def single_rate(task: Any, cfg: TrainConfig, budget_s: float = 0.5) -> float:
    """Measured seed-steps/s of one member trained alone (the trainer's fused AdamW)."""
    opt = make_optimizer(task.model, cfg)

    def step(s: int) -> None:
        """One AdamW update of the member at step ``s``."""
        loss = task.train_loss(s)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return 1.0 / _time_steps(step, budget_s)


def batched_rate(tasks: Sequence[Any], cfgs: Sequence[TrainConfig], budget_s: float = 1.0) -> float:
    """Measured seed-steps/s of ``len(tasks)`` members trained as one stacked model."""
    params = stack_models(tasks)
    opt, loss_fn = StackedAdamW(params, cfgs), loss_function(tasks)

    def step(s: int) -> None:
        """One stacked update of all members at step ``s``."""
        loss_fn(params, s).sum().backward()
        opt.step(s)
        for p in params.values():
            p.grad = None

    return len(tasks) / _time_steps(step, budget_s)
