"""Seconds per checkpoint of each developmental signal on the grokking ``quick`` model.

Builds the quick preset's task (p = 59, 1,044 training pairs, 212,864 parameters), loads a
checkpoint of ``--run`` (or keeps the initial weights), and times each signal at its
default settings on one probe, plus one full-batch AdamW training step. Prints seconds per
checkpoint, the multiple of a training step, the total, the LLC target (≤ 10 s), and the
cost of measuring a whole default run every 5th checkpoint against its training time.

The probe gets per-sample losses here (the grokking task's cross-entropy per pair), so the
gradient noise scale is timed too.

    python bench/signals.py [--run runs/grokking-quick-...] [--step 5000] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from phasewatch.phenomena import get
from phasewatch.signals import get as get_signal
from phasewatch.signals.base import step_generator
from phasewatch.signals.runner import make_probe
from phasewatch.store import open_run
from phasewatch.store.env import describe
from phasewatch.training.trainer import make_optimizer


def training_step_seconds(task, cfg, steps: int = 20) -> tuple[float, float]:
    """Wall and CPU seconds of one full-batch AdamW step (mean over ``steps``)."""
    opt = make_optimizer(task.model, cfg)
    state = {k: v.clone() for k, v in task.model.state_dict().items()}
    for i in range(steps + 3):
        if i == 3:
            t0, c0 = time.perf_counter(), time.process_time()
        loss = task.train_loss(i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    dt, dc = (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps
    task.model.load_state_dict(state)
    return dt, dc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default=None, help="a grokking quick run (default: initial weights)")
    ap.add_argument("--step", type=int, default=None, help="checkpoint (default: the last)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    phen = get("grokking")
    pre = phen.presets["quick"]
    task = phen.build(pre.task, pre.train)
    step, n_ckpts = 0, pre.train.steps // pre.train.checkpoint_every + 1
    if args.run:
        rd = open_run(args.run)
        steps = rd.checkpoint_steps()
        step = args.step if args.step is not None else steps[-1]
        task.model.load_state_dict(rd.load_checkpoint(step))
        n_ckpts = len(steps)
    train_s, train_cpu = training_step_seconds(task, pre.train)
    if args.run:
        task.model.load_state_dict(rd.load_checkpoint(step))
    probe = make_probe(
        task, step, previous={k: v.clone() for k, v in task.model.state_dict().items()}
    )

    def per_sample():  # cross-entropy per training pair (nats), mean = task.train_loss
        logits = task.logits(task.train_idx).double()
        return -logits.log_softmax(-1).gather(-1, task.labels[task.train_idx, None])[:, 0]

    probe.per_sample_loss = per_sample
    env = describe("cpu")
    print(
        f"machine: {env['cpu']} | {args.threads} threads | torch {env['torch']} | "
        f"{platform.system()} | grokking quick | step {step} | n={probe.n} | "
        f"d={sum(p.numel() for p in probe.params()):,} | load average {os.getloadavg()[0]:.1f}"
    )
    print(f"one training step (full batch, AdamW): {train_s:.4f} s wall, {train_cpu:.4f} s CPU")
    print("(CPU = process time of all threads: on a shared machine, the better guide to idle wall)")
    print(f"{'signal':<12}{'s/checkpoint':>14}{'CPU s':>8}{'x train step':>14}  notes")
    total = total_cpu = 0.0
    for name in ("llc", "hessian", "gradients", "geometry"):
        spec = get_signal(name)
        settings = spec.settings()
        best = best_cpu = float("inf")
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            m = spec.run(probe, settings, generator=step_generator(0, step))
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        total, total_cpu = total + best, total_cpu + best_cpu
        note = ""
        if name == "llc":
            # idle wall-time estimate: CPU time with one thread (<= wall), wall with more
            idle = min(best, best_cpu)
            note = f"λ̂={m.values['llc/mean']:.3g}±{m.values['llc/std']:.2g}; target ≤ 10 s: " + (
                f"{'met' if idle <= 10 else 'MISSED'} ({idle:.1f} s = min(wall, CPU))"
            )
        print(f"{name:<12}{best:>14.2f}{best_cpu:>8.2f}{best_cpu / train_cpu:>14.0f}  {note}")
    print(f"{'total':<12}{total:>14.2f}{total_cpu:>8.2f}{total_cpu / train_cpu:>14.0f}")
    measured = -(-n_ckpts // 5) + (1 if (n_ckpts - 1) % 5 else 0)
    run_cpu = pre.train.steps * train_cpu
    print(
        f"whole default run: {measured} of {n_ckpts} checkpoints (--every 5) ≈ "
        f"{measured * total_cpu:.0f} CPU s vs {run_cpu:.0f} CPU s to train it "
        f"(training steps only): {measured * total_cpu / run_cpu:.2f}x"
    )


if __name__ == "__main__":
    main()
