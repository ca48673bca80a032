"""Training speed of the superposition presets (Elhage et al. 2022 toy models).

First, side by side in one run: the single-run training step (data, fused loss and
gradient, AdamW) through the previous :class:`FusedToyLoss` (``before``, kept here for
the comparison) and the current one (``now``), alternating for ``--rounds`` rounds
(median wall and CPU seconds per step), the GFLOP/s of the step (matrix-product FLOPs by
``torch.utils.flop_counter``, per CPU second) and its share of a plain float32 matmul of
the step's largest shape (instances·batch × n @ n × m), timed in the same run.
``share`` uses ``flop_counter``'s count, which omits the in-place ``baddbmm_`` products
(2 of the 5 matrix products of the fused gradient); ``share5`` counts all five.

For each preset, times ``--steps`` AdamW updates of all its instances at once (the
trainer's optimizer, the preset's batch), one ``evaluate()`` call, and reports s/step,
instance-steps/s and the projected time of the preset's full run. Then times a short
end-to-end ``phasewatch.api.run`` (training, checkpoints, analysis; no report).

    python bench/superposition.py [--steps 50] [--threads 1] [--short-steps 1000]
                                  [--compare geometry,intro] [--rounds 3] [--only-compare]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import torch
from matmul import matmul_gflops
from torch.utils.flop_counter import FlopCounterMode

from phasewatch import api
from phasewatch.phenomena import get
from phasewatch.phenomena.superposition.model import FusedToyLoss
from phasewatch.store.env import describe
from phasewatch.training.trainer import make_optimizer


class PreviousFusedToyLoss(torch.autograd.Function):
    """:class:`~phasewatch.phenomena.superposition.model.FusedToyLoss` as it was before
    (kept here for the comparison): the ReLU derivative as a boolean mask multiplied in."""

    @staticmethod
    def forward(ctx, x, W, b, importances):
        ni, B, n = x.shape
        chunk = max(1, (1 << 19) // (ni * n))
        Wt, bias = W.transpose(1, 2), b[:, None, :]
        scale = (importances * (2.0 / B))[:, None, :]  # (I, 1, n)
        loss, dW, db = x.new_zeros(ni), torch.zeros_like(W), torch.zeros_like(b)
        for start in range(0, B, chunk):
            xc = x[:, start : start + chunk]  # (I, C, n)
            h = torch.bmm(xc, Wt)  # (I, C, m)
            r = torch.bmm(h, W).add_(bias).clamp_(min=0)  # (I, C, n): x'
            active = r > 0
            r.sub_(xc)
            g = r * scale
            loss += torch.linalg.vecdot(g.reshape(ni, -1), r.reshape(ni, -1)) / 2
            g.mul_(active)
            dh = torch.bmm(g, Wt)  # (I, C, m)
            dW.baddbmm_(h.transpose(1, 2), g).baddbmm_(dh.transpose(1, 2), xc)
            db += g.sum(1)
        ctx.save_for_backward(dW, db)
        return loss

    @staticmethod
    def backward(ctx, grad):
        dW, db = ctx.saved_tensors
        return None, dW * grad[:, None, None], db * grad[:, None], None


KERNELS = {"before": PreviousFusedToyLoss, "now": FusedToyLoss}


def time_kernel(name: str, kernel, steps: int) -> tuple[float, float]:
    """Wall and CPU seconds per training step (data, loss and gradient, AdamW) of preset
    ``name`` through ``kernel`` (mean over ``steps`` after 3 warm-up steps)."""
    phen = get("superposition")
    pre = phen.presets[name]
    task = phen.build(pre.task, pre.train)
    opt = make_optimizer(task.model, pre.train)
    m = task.model
    t0 = c0 = 0.0
    for step in range(steps + 3):
        if step == 3:
            t0, c0 = time.perf_counter(), time.process_time()
        loss = kernel.apply(task.batch_at(step), m.W, m.b, task.importances).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps


def compare(name: str, steps: int, rounds: int) -> list[str]:
    """Lines of the side-by-side table (before vs now) for preset ``name``: GFLOP/s and
    share of the matmul rate by ``flop_counter``'s count and by the five products."""
    phen = get("superposition")
    pre = phen.presets[name]
    task = phen.build(pre.task, pre.train)
    with FlopCounterMode(display=False) as counter:
        task.train_loss(0).backward()
    counted = float(counter.get_total_flops())
    products = 5 * 2 * task.instances * task.batch * task.n * task.m  # xWᵀ, hW, gWᵀ, hᵀg, dhᵀx
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in KERNELS}
    for _ in range(rounds):
        for label, kernel in KERNELS.items():
            times[label].append(time_kernel(name, kernel, steps))
    shape = (task.instances * task.batch, task.n, task.m)  # (I·B, n) @ (n, m)
    mm = matmul_gflops(shape)
    med = {k: tuple(statistics.median(x) for x in zip(*v)) for k, v in times.items()}
    (bw, bc), lines = med["before"], []
    for label, (wall, cpu) in med.items():
        rate, true_rate = counted / cpu / 1e9, products / cpu / 1e9
        lines.append(
            f"{name:<15}{label:<8}{wall:>9.4f}{cpu:>9.4f}{rate:>9.2f}{mm:>8.2f}"
            f"{rate / mm:>7.0%}{true_rate / mm:>9.0%}{bc / cpu:>12.2f}x, {bw / wall:.2f}x"
        )
    lines.append(
        f"{'':<15}(matmul {shape[0]}x{shape[1]} @ {shape[1]}x{shape[2]}; per step "
        f"{counted / 1e6:.0f} MFLOP counted, {products / 1e6:.0f} MFLOP in the 5 products)"
    )
    return lines


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
    ap.add_argument("--compare", default="geometry,intro", help="presets: before vs now")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    ap.add_argument("--only-compare", action="store_true", help="skip the other tables")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    env = describe("cpu")
    print(
        f"machine: {env['cpu']} | {args.threads} threads | torch {env['torch']} | "
        f"{platform.system()} | {args.steps} timed steps per preset | load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'preset':<15}{'kernel':<8}{'s/step':>9}{'cpu s':>9}{'GFLOP/s':>9}{'matmul':>8}"
        f"{'share':>7}{'share5':>9}{'speed-up (cpu, wall)':>22}"
    )
    for name in args.compare.split(","):
        for line in compare(name, args.steps, args.rounds):
            print(line, flush=True)
    if args.only_compare:
        return
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
