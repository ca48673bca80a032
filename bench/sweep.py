"""Sweep throughput: seeds batched in one model vs one after another vs N processes.

For each preset, with one torch thread per process, prints seed-steps/s (training
updates per second summed over seeds, AdamW and data included) for K = 1, 4, 16 (64 for
the small superposition model) seeds trained as one stacked model ("batched") and one
after another ("sequential"), then N processes × 1 thread each training single seeds
(N = the cores). Then the achieved GFLOP/s of one training step (FLOPs counted by
``torch.utils.flop_counter``, divided by the measured step time) next to a plain float32
matmul of the step's largest shape, measured in the same run.

    python bench/sweep.py [--presets superposition:intro,induction:olsson-2layer,...]
                          [--budget 1.0] [--procs N]

``--executors`` instead compares the sweep executors on one sweep of ``--members`` single
(unbatched) grokking:quick members of ``--steps`` steps (members trained, analysed and
written as by ``phasewatch sweep``): the local executor with 1 worker (in-process) and with
N workers (a process pool), and, with ``--ray``, Ray on a local N-CPU instance (its
start-up timed apart). Each prints wall seconds, member-steps/s, and CPU seconds of this
process and its pool workers; wall-clock scaling is wall(1) / wall(N), and the CPU-time
efficiency CPU(1) / CPU(N) is what N workers reach on an idle machine (where each worker
has its core), since on a loaded one the wall clock depends on what else runs.

    python bench/sweep.py --executors [--members 6] [--steps 200] [--procs N] [--ray]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import torch
from matmul import matmul_gflops
from torch.utils.flop_counter import FlopCounterMode

from phasewatch.config import available_cores as cores
from phasewatch.phenomena import get
from phasewatch.store.env import describe
from phasewatch.sweep import plan as planning
from phasewatch.sweep import spec as sw
from phasewatch.sweep.executors import LocalSession, RaySession
from phasewatch.training.batched import batched_rate, single_rate

SIZES = {"superposition": (1, 4, 16, 64)}
DEFAULT_SIZES = (1, 4, 16)
PRESETS = "superposition:intro,induction:olsson-2layer,grokking:quick,grokking:nanda2023"


def build(name: str, preset: str, seed: int):
    phen = get(name)
    pre = phen.presets[preset]
    train = dataclasses.replace(pre.train, seed=seed, threads=1)
    return phen.build(pre.task, train), train


def sequential_rate(name: str, preset: str, k: int, budget: float) -> float:
    """Seed-steps/s of k seeds trained one after another (each for budget / k seconds)."""
    rates = [single_rate(*build(name, preset, s), budget_s=budget / k) for s in range(min(k, 4))]
    return len(rates) / sum(1 / r for r in rates)


def _proc_rate(args: tuple[str, str, int, float]) -> float:
    torch.set_num_threads(1)
    name, preset, seed, budget = args
    return single_rate(*build(name, preset, seed), budget_s=budget)


def procs_rate(name: str, preset: str, n: int, budget: float) -> float:
    """Seed-steps/s of n processes × 1 thread, each training one seed, all at once."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(n) as pool:
        return sum(pool.map(_proc_rate, [(name, preset, s, budget) for s in range(n)]))


def largest_matmul(name: str, task) -> tuple[int, int, int]:
    """(rows, inner, cols) of the step's largest matrix product."""
    cfg = task.cfg if hasattr(task, "cfg") else None
    if name == "grokking":
        return len(task.train_idx), cfg.d_model, cfg.d_mlp
    if name == "induction":
        return cfg.batch_size * cfg.n_ctx, cfg.d_model, cfg.vocab
    return task.instances * task.batch, task.n, task.m  # superposition: (I·B, n) @ (n, m)


def step_flops(task, train) -> float:
    """FLOPs of one forward + backward pass (matrix products; element-wise ops not counted)."""
    with FlopCounterMode(display=False) as counter:
        task.train_loss(0).backward()
    task.model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def bench_preset(name: str, preset: str, budget: float, n_procs: int) -> list[str]:
    lines = []
    one = single_rate(*build(name, preset, 0), budget_s=budget)
    for k in SIZES.get(name, DEFAULT_SIZES):
        built = [build(name, preset, s) for s in range(k)]
        rate = batched_rate([t for t, _ in built], [c for _, c in built], budget_s=budget)
        seq = one if k == 1 else sequential_rate(name, preset, k, budget)
        lines.append(
            f"{name + ':' + preset:<26} {k:>5} {rate:>10.1f} {seq:>11.1f} {rate / seq:>8.2f}x"
        )
    procs = procs_rate(name, preset, n_procs, 2 * budget)
    task, train = build(name, preset, 0)
    flops = step_flops(task, train)
    step_gflops = flops * one / 1e9
    shape = largest_matmul(name, task)
    mm = matmul_gflops(shape, budget, time.perf_counter)
    lines.append(
        f"{'':<26} {n_procs} processes x 1 thread, single seeds: {procs:.1f} seed-steps/s "
        f"({procs / one:.2f}x one seed)"
    )
    lines.append(
        f"{'':<26} training step: {flops / 1e6:.1f} MFLOP, {step_gflops:.2f} GFLOP/s; plain "
        f"matmul {shape[0]}x{shape[1]} @ {shape[1]}x{shape[2]}: {mm:.2f} GFLOP/s "
        f"(step = {step_gflops / mm:.0%} of it)"
    )
    return lines


def _cpu_s() -> float:
    """User + system CPU seconds of this process and its waited-for children."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _units(members: int, steps: int, out: Path) -> list[dict]:
    """Units of one single-strategy grokking:quick sweep of ``members`` seeds."""
    spec = sw.build_spec(
        {
            "phenomenon": "grokking",
            "preset": "quick",
            "seeds": f"0:{members}",
            "set": {"steps": steps, "eval_every": 50, "checkpoint_every": steps, "threads": 1},
            "strategy": "single",
        }
    )
    units, _ = planning.plan(spec, sw.members(spec, out), None)
    return units


def _local_ray(n: int) -> RaySession:
    """A session on a local Ray of ``n`` CPUs, started here without the executor's
    connection timeout (a loaded machine can take longer to start Ray)."""
    import logging

    import ray

    ray.init(num_cpus=n, logging_level=logging.ERROR, log_to_driver=False)
    return RaySession(None)


def bench_executors(members: int, steps: int, n: int, ray: bool) -> None:
    """Print wall, member-steps/s and CPU of the executors on the same sweep."""
    sessions = [
        ("local, 1 worker", lambda: LocalSession(1)),
        (f"local, {n} workers", lambda: LocalSession(n)),
    ]
    if ray:
        sessions.append((f"ray, local {n} CPUs", lambda: _local_ray(n)))
    print(f"{'executor':<22} {'wall s':>7} {'member-steps/s':>15} {'CPU s':>7}  (load)")
    walls, cpus = {}, {}
    for name, make in sessions:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            session = make()
            setup = time.perf_counter() - t0
            units = _units(members, steps, Path(tmp))
            c0, t0 = _cpu_s(), time.perf_counter()
            rows = session.execute(units, Path(tmp), progress=False)
            wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
            session.close()
            if name.startswith("ray"):
                import ray

                ray.shutdown()
        assert {r["status"] for r in rows} == {"done"}, rows
        walls[name], cpus[name] = wall, cpu
        extra = f" (+{setup:.1f} s start-up)" if setup > 1 else ""
        cpu_text = "n/a" if name.startswith("ray") else f"{cpu:.1f}"
        print(
            f"{name:<22} {wall:>7.1f} {members * steps / wall:>15.1f} {cpu_text:>7}  "
            f"({os.getloadavg()[0]:.1f}){extra}",
            flush=True,
        )
    one, many = walls["local, 1 worker"], walls[f"local, {n} workers"]
    eff = cpus["local, 1 worker"] / cpus[f"local, {n} workers"]
    print(f"local {n} workers / 1 worker, wall clock: {one / many:.2f}x (target >= {0.9 * n:.1f}x)")
    print(f"CPU-time efficiency CPU(1)/CPU({n}) = {eff:.2f}: idle-machine estimate {n * eff:.2f}x")
    if ray:
        print(
            f"ray / local {n} workers, wall clock: {many / walls[sessions[-1][0]]:.2f}x "
            "(target >= 0.8)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default=PRESETS, help="phenomenon:preset, comma-separated")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    ap.add_argument("--procs", type=int, default=cores(), help="processes (default: cores)")
    ap.add_argument("--executors", action="store_true", help="compare the sweep executors")
    ap.add_argument("--members", type=int, default=6, help="--executors: sweep members")
    ap.add_argument("--steps", type=int, default=200, help="--executors: steps per member")
    ap.add_argument("--ray", action="store_true", help="--executors: also Ray (local)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    env = describe("cpu")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | machine: {env['cpu']} | "
        f"{cores()} cores | torch {torch.__version__} | {platform.system()} | 1 thread per "
        f"process | load average {load:.1f}"
    )
    if args.executors:
        bench_executors(args.members, args.steps, args.procs, args.ray)
        return
    print(f"{'preset':<26} {'seeds':>5} {'batched':>10} {'sequential':>11} {'gain':>9}")
    print(f"{'':<26} {'':>5} {'seed-steps/s':>10} {'seed-steps/s':>11}")
    for item in args.presets.split(","):
        name, preset = item.split(":")
        for line in bench_preset(name, preset, args.budget, args.procs):
            print(line, flush=True)


if __name__ == "__main__":
    main()
