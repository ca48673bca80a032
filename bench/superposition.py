"""Training speed of the superposition presets (Elhage et al. 2022 toy models).

For each preset, times ``--steps`` AdamW updates of all its instances at once (the
trainer's optimizer, the preset's batch), one ``evaluate()`` call, and reports s/step,
instance-steps/s and the projected time of the preset's full run. Then times a short
end-to-end ``phasewatch.api.run`` (training, checkpoints, analysis; no report).

    python bench/superposition.py [--steps 50] [--threads 1] [--short-steps 1000]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import torch

from phasewatch import api
from phasewatch.phenomena import get
from phasewatch.store.env import describe
from phasewatch.training.trainer import make_optimizer


def time_preset(name: str, steps: int) -> dict[str, float]:
    phen = get("superposition")
    pre = phen.presets[name]
    task = phen.build(pre.task, pre.train)
    opt = make_optimizer(task.model, pre.train)
    t0 = 0.0
    for step in range(steps + 5):
        if step == 5:  # exclude warm-up iterations (allocator, thread pool)
            t0 = time.perf_counter()
        loss = task.train_loss(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    per_step = (time.perf_counter() - t0) / steps
    t1 = time.perf_counter()
    task.evaluate()
    per_eval = time.perf_counter() - t1
    full = pre.train.steps * per_step + (pre.train.steps // pre.train.eval_every + 1) * per_eval
    return {
        "instances": pre.task.instances,
        "n": pre.task.n,
        "m": pre.task.m,
        "s_step": per_step,
        "inst_steps": pre.task.instances / per_step,
        "s_eval": per_eval,
        "full_min": full / 60,
        "steps": pre.train.steps,
    }


def time_capacity(steps: int, m: int = 20, ns=(50, 100, 200, 400)) -> float:
    """Seconds per step of ``phasewatch superposition capacity`` (one model per n, 3 S)."""
    from phasewatch.config import TrainConfig
    from phasewatch.phenomena.superposition.task import SuperpositionTask, fit

    dens = torch.tensor([0.1, 0.01, 0.001], dtype=torch.float64)
    total = 0.0
    for n in ns:
        task = SuperpositionTask(dens, torch.ones(3, n, dtype=torch.float64), m)
        fit(task, TrainConfig(steps=5, eval_every=5))  # warm-up
        t0 = time.perf_counter()
        fit(task, TrainConfig(steps=steps, eval_every=steps))
        total += (time.perf_counter() - t0) / steps
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=50, help="timed steps per preset")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--short-steps", type=int, default=1000, help="steps of the end-to-end run")
    ap.add_argument("--presets", default="intro,phase-diagram,geometry")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    env = describe("cpu")
    print(
        f"machine: {env['cpu']} | {args.threads} threads | torch {env['torch']} | "
        f"{platform.system()} | {args.steps} timed steps per preset"
    )
    head = f"{'preset':<15}{'inst':>6}{'n':>5}{'m':>4}{'s/step':>10}{'inst-steps/s':>14}"
    print(head + f"{'s/eval':>9}{'full run':>16}")
    for name in args.presets.split(","):
        r = time_preset(name, args.steps)
        print(
            f"{name:<15}{r['instances']:>6}{r['n']:>5}{r['m']:>4}{r['s_step']:>10.4f}"
            f"{r['inst_steps']:>14,.0f}{r['s_eval']:>9.3f}"
            f"{r['full_min']:>9.1f} min ({r['steps']:,} steps)"
        )
    cap = time_capacity(args.steps)
    print(
        f"{'capacity m=20':<15}{'3x4':>6}{'50-400':>9}{cap:>10.4f}{'':>14}{'':>9}"
        f"{cap * 10_000 / 60:>9.1f} min (10,000 steps, n = 50,100,200,400, 3 sparsities)"
    )
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        overrides = {"steps": args.short_steps, "threads": args.threads}
        api.run("superposition", "intro", overrides, out=out, progress=False, report=False)
        dt = time.perf_counter() - t0
    print(
        f"end-to-end: intro preset, {args.short_steps:,} steps (train + checkpoints + "
        f"analysis, no report): {dt:.1f} s"
    )


if __name__ == "__main__":
    main()
