"""Training-step speed of the induction presets (olsson-2layer and its 1-layer control).

For each preset, times ``--steps`` AdamW updates on fresh batches (excluding the first 10),
once with the training path (``fast_logits``, what ``train_loss`` uses) and once with the
hooked full forward (``model(tokens)``, which fires every hook point), and one
``evaluate()`` call (all per-head scores). Prints wall-clock and CPU seconds per step
(CPU time of all threads: on a machine shared with other jobs it is the better guide to
the idle speed), steps/s and the projected wall time of the whole preset (steps + evals).

    python bench/induction.py [--steps 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from phasewatch.models import fast_logits
from phasewatch.phenomena import get
from phasewatch.phenomena.induction.task import next_token_loss
from phasewatch.store.env import describe
from phasewatch.training.trainer import learning_rate, make_optimizer


def time_steps(preset: str, steps: int, fast: bool) -> tuple[float, float]:
    """Wall and CPU seconds per training step of ``preset`` (mean over steps 10..steps)."""
    pre = get("induction").presets[preset]
    task = get("induction").build(pre.task, pre.train)
    opt = make_optimizer(task.model, pre.train)
    t0 = c0 = 0.0
    for step in range(steps):
        if step == 10:  # exclude warm-up iterations (allocator, thread pool)
            t0, c0 = time.perf_counter(), time.process_time()
        for g in opt.param_groups:
            g["lr"] = learning_rate(pre.train, step)
        tokens = task.batch(step)
        logits = fast_logits(task.model, tokens) if fast else task.model(tokens)
        loss = next_token_loss(logits, tokens)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    n = steps - 10
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def time_eval(preset: str, repeats: int = 3) -> float:
    pre = get("induction").presets[preset]
    task = get("induction").build(pre.task, pre.train)
    task.evaluate()
    t0 = time.perf_counter()
    for _ in range(repeats):
        task.evaluate()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    env = describe("cpu")
    print(
        f"machine: {env['cpu']} | {args.threads} threads | torch {env['torch']} | "
        f"{platform.system()} | {args.steps} steps | load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'preset':<15}{'path':<13}{'s/step':>8}{'cpu s':>8}{'steps/s':>9}"
        f"{'eval s':>8}{'steps':>7}{'projected':>12}"
    )
    for preset in ("olsson-2layer", "olsson-1layer"):
        pre = get("induction").presets[preset]
        ev = time_eval(preset)
        n_evals = pre.train.steps // pre.train.eval_every + 1
        for label, fast in (("fast (used)", True), ("hooked", False)):
            s, cpu = time_steps(preset, args.steps, fast)
            total = s * pre.train.steps + 2 * ev * n_evals  # evals + checkpoint measures
            print(
                f"{preset:<15}{label:<13}{s:>8.4f}{cpu:>8.4f}{1 / s:>9.1f}{ev:>8.3f}"
                f"{pre.train.steps:>7,}{total / 60:>8.1f} min"
            )


if __name__ == "__main__":
    main()
