"""CPU seconds per measured point of every registered signal, on the grokking ``small`` and
``nanda2023`` models and the induction ``olsson-2layer`` model (and any other
``phenomenon:preset`` given), as a multiple of one training step of that model.

Per-checkpoint signals run on the preset's probe at its initial weights (the cost does
not depend on the weights, except that a diverged LLC chain stops early). Trajectory
signals run at one step of a history of ``--history`` checkpoints (every 100 steps): the
per-sample loss table of the ``samples`` signal measured at slightly perturbed copies of
the weights, a training-loss curve of 256 points (every 10 steps) and the perturbed
checkpoints themselves. A signal that costs more than 20 training steps per point is
flagged (``> 20``), as the cost table on the speed page says (docs/results/speed.md,
"Signals").

``--compare K`` prints instead, per model, ``llc`` and ``hessian`` measured on K checkpoints
(perturbed copies of the initial weights) one at a time (today's loop) and all at once
(signals/batched.py), side by side in one process: seconds per checkpoint (CPU and wall)
and their ratio, with one forward-backward pass's FLOP rate as a share of a plain matrix
multiply's (the most batching can gain is about its inverse: every stacked copy has its
own weights, so batching removes per-operation overhead, not arithmetic).

    python bench/signals.py [--models grokking:small,grokking:nanda2023,induction:olsson-2layer]
                            [--signals llc,dmd,...] [--threads 1] [--history 24]
    python bench/signals.py --compare 12 --models grokking:small,deep_linear:saxe
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import pandas as pd
import torch

from phasewatch.phenomena import get
from phasewatch.signals import base
from phasewatch.signals import get as get_signal
from phasewatch.signals.base import step_generator
from phasewatch.signals.batched import (
    BATCH_MAX_MFLOP,
    batch_elements,
    forward_backward_mflop,
    hessian_batch,
    llc_batch,
)
from phasewatch.signals.hessian import hessian
from phasewatch.signals.llc import LLCSettings, estimate_llc
from phasewatch.signals.runner import make_probe
from phasewatch.signals.trajectory import History
from phasewatch.store.env import describe
from phasewatch.training.trainer import make_optimizer

MODELS = "grokking:small,grokking:nanda2023,induction:olsson-2layer"


def timed(fn) -> tuple[float, float, object]:
    """Wall and CPU seconds of ``fn()`` and its result."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def training_step_cpu(task, cfg, steps: int = 5) -> float:
    """CPU seconds of one full-batch training step (mean over ``steps`` after 2 warm-ups)."""
    opt = make_optimizer(task.model, cfg)
    state = {k: v.clone() for k, v in task.model.state_dict().items()}
    for i in range(steps + 2):
        if i == 2:
            c0 = time.process_time()
        loss = task.train_loss(i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    task.model.load_state_dict(state)
    return (time.process_time() - c0) / steps


def history(task, probe, points: int) -> History:
    """A history of ``points`` checkpoints (every 100 steps): perturbed copies of the weights, the
    ``samples`` table measured on each, and a synthetic loss curve."""
    state = {k: v.clone() for k, v in task.model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    ckpts, tables = {}, []
    spec = get_signal("samples")
    for i in range(points):
        s = {k: v + 1e-3 * torch.randn(v.shape, generator=g) for k, v in state.items()}
        ckpts[i * 100] = s
        task.model.load_state_dict(s)
        m = spec.run(probe, spec.settings(), generator=step_generator(0, i))
        tables.append(m.tables["per_sample_loss"].assign(step=i * 100, settings="bench"))
    task.model.load_state_dict(state)
    steps = np.arange(256) * 10  # a logged training-loss curve of 256 points
    curve = np.exp(-steps / 800) + 0.01 * np.sin(steps / 50)
    metrics = pd.DataFrame({"step": steps, "key": "train/loss", "value": curve})
    last = (points - 1) * 100
    return History(
        step=last,
        metrics=metrics[metrics["step"] <= last],
        tables={"per_sample_loss": pd.concat(tables, ignore_index=True)},
        checkpoints=tuple(ckpts),
        loader=lambda s: ckpts[s],
    )


def bench_model(spec: str, names: list[str], points: int) -> None:
    """Print one table: every signal's seconds per point on the model ``phenomenon:preset``."""
    phen_name, preset = spec.split(":")
    phen = get(phen_name)
    pre = phen.presets[preset]
    task = phen.build(pre.task, pre.train)
    train_cpu = training_step_cpu(task, pre.train)
    state = {k: v.clone() for k, v in task.model.state_dict().items()}
    probe = make_probe(task, 0, previous=state, previous_step=0)
    d = sum(p.numel() for p in probe.params())
    print(f"\n{spec}: n={probe.n}, d={d:,}, one training step {train_cpu:.4f} CPU s")
    print(f"{'signal':<16}{'kind':<12}{'s/point':>9}{'CPU s':>9}{'x train step':>14}  note")
    hist = None
    for name in names:
        sig = get_signal(name)
        settings = sig.settings()
        gen = step_generator(0, 0)
        if sig.kind == "trajectory":
            hist = hist or history(task, probe, points)
        target = hist if sig.kind == "trajectory" else probe
        try:
            wall, cpu, m = timed(lambda: sig.run(target, settings, generator=gen))  # noqa: B023
        except Exception as e:  # a signal that does not apply to this model
            print(f"{name:<16}{sig.kind:<12}{'-':>9}{'-':>9}{'-':>14}  {type(e).__name__}: {e}")
            continue
        task.model.load_state_dict(state)
        ratio = cpu / train_cpu
        flag = "> 20 training steps" if ratio > 20 else ""
        print(f"{name:<16}{sig.kind:<12}{wall:>9.3f}{cpu:>9.3f}{ratio:>14.1f}  {flag}")


def matmul_share(probe) -> tuple[float, float, float]:
    """(MFLOP of one forward-backward of the probe loss, its GFLOP/s, the GFLOP/s of a plain
    (1024 × 1024) matrix multiply), CPU time, one thread as set."""
    params = probe.params()
    mflop = forward_backward_mflop(probe)
    c0 = time.process_time()
    for _ in range(10):
        torch.autograd.grad(probe.loss(), params)
    rate = mflop * 10 / (time.process_time() - c0) / 1e3
    a = torch.randn(1024, 1024)
    c0 = time.process_time()
    for _ in range(5):
        a @ a
    peak = 5 * 2 * 1024**3 / (time.process_time() - c0) / 1e9
    return mflop, rate, peak


def compare(spec: str, k: int) -> None:
    """Print llc and hessian on ``k`` checkpoints: the loop vs the batched path."""
    phen_name, preset = spec.split(":")
    phen = get(phen_name)
    pre = phen.presets[preset]
    task = phen.build(pre.task, pre.train)
    probe = make_probe(task, 0)
    params = probe.params()
    g = torch.Generator().manual_seed(0)
    states = [
        [p.detach() + 1e-3 * torch.randn(p.shape, generator=g) for p in params] for _ in range(k)
    ]
    llc_s = LLCSettings(**pre.signals.get("llc", {}))
    hess_s = get_signal("hessian").settings()
    mflop, rate, peak = matmul_share(probe)
    group = max(1, min(batch_elements(probe) // llc_s.chains, batch_elements(probe, True), k))
    print(
        f"\n{spec}: n={probe.n}, d={sum(p.numel() for p in params):,}, {k} checkpoints, "
        f"batch {group} checkpoints; one forward-backward {mflop:.1f} MFLOP at {rate:.1f} "
        f"GFLOP/s = {100 * rate / peak:.0f}% of a 1024² matmul ({peak:.1f} GFLOP/s); "
        f"measure batches it: {'yes' if mflop <= BATCH_MAX_MFLOP else 'no'} "
        f"(<= {BATCH_MAX_MFLOP:g} MFLOP)"
    )
    print(
        f"{'signal':<10}{'loop CPU':>10}{'loop wall':>11}{'batch CPU':>11}{'batch wall':>12}"
        f"{'CPU ratio':>11}{'wall ratio':>12}   (seconds per checkpoint)"
    )
    for name, one, many, s in (
        ("llc", lambda gen: estimate_llc(probe, llc_s, generator=gen), llc_batch, llc_s),
        ("hessian", lambda gen: hessian(probe, hess_s, generator=gen), hessian_batch, hess_s),
    ):

        def loop(one=one):
            """Today's path: each checkpoint loaded into the model, then measured."""
            for i, st in enumerate(states):
                with torch.no_grad():
                    for p, w in zip(params, st):
                        p.copy_(w)
                one(step_generator(0, i))

        def batched(many=many, s=s):
            """All checkpoints at once, in groups that fit the memory budget."""
            for a in range(0, k, group):
                gens = [step_generator(0, i) for i in range(a, min(k, a + group))]
                many(probe, states[a : a + group], s, generators=gens)

        lw, lc, _ = timed(loop)
        bw, bc, _ = timed(batched)
        print(
            f"{name:<10}{lc / k:>10.3f}{lw / k:>11.3f}{bc / k:>11.3f}{bw / k:>12.3f}"
            f"{lc / bc:>11.2f}{lw / bw:>12.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=MODELS, help="comma-separated phenomenon:preset")
    ap.add_argument("--signals", default="", help="comma-separated (default: all registered)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--history", type=int, default=24, help="checkpoints in the history")
    ap.add_argument("--compare", type=int, default=0, help="K: batched vs loop on K checkpoints")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = args.signals.split(",") if args.signals else base.names()
    env = describe("cpu")
    print(
        f"machine: {env['cpu']} | {args.threads} thread(s) | torch {env['torch']} | "
        f"{platform.system()} | load average {os.getloadavg()[0]:.1f}"
    )
    print("(CPU = process time of all threads: on a shared machine, the guide to idle wall)")
    for spec in args.models.split(","):
        if args.compare:
            compare(spec, args.compare)
        else:
            bench_model(spec, names, args.history)


if __name__ == "__main__":
    main()
