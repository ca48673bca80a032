"""Threads under contention: the step time of ``run grokking`` (quick preset) with 1 or 2
torch threads and OpenMP's default or passive wait policy, on the machine as it is and
with every core also busy with another job (one spinning Python process per core).

``OMP_WAIT_POLICY`` is read when torch loads OpenMP, so each policy runs in a fresh
process (:data:`CHILD`); inside it, each cell trains the quick preset's model for
``--steps`` full-batch AdamW updates and prints ms/step of wall clock and of CPU (the
process's user + system time over all its threads: spin-waiting shows here), as soon as
it is measured. The last column is the slowdown under contention (busy / as is).

    python bench/threads.py [--steps 100] [--policies default,PASSIVE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

CHILD = r"""
import dataclasses, os, subprocess, sys, time
import torch
from phasewatch.phenomena import get
from phasewatch.training.trainer import make_optimizer
steps, policy, ncores = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
phen = get("grokking")
pre = phen.presets["quick"]
task = phen.build(pre.task, pre.train)
opt = make_optimizer(task.model, pre.train)

def step(s):
    loss = task.train_loss(s)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()

def cell(threads):
    torch.set_num_threads(threads)
    for s in range(5):
        step(s)
    w0, c0 = time.perf_counter(), time.process_time()
    for s in range(steps):
        step(s)
    return 1e3 * (time.perf_counter() - w0) / steps, 1e3 * (time.process_time() - c0) / steps

base = {}
for busy in (False, True):
    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(ncores if busy else 0)]
    try:
        for threads in (1, 2):
            wall, cpu = cell(threads)
            if not busy:
                base[threads] = wall
            slow = f"{wall / base[threads]:>7.2f}x" if busy else ""
            load = os.getloadavg()[0]
            print(f"{threads:>7} {policy:>15} {'busy' if busy else 'as is':>6} "
                  f"{wall:>8.1f} {cpu:>8.1f} {load:>5.1f} {slow}", flush=True)
    finally:
        for p in spin:
            p.kill()
            p.wait()
"""


def cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=100, help="updates timed per cell")
    ap.add_argument("--policies", default="default,PASSIVE", help="OMP_WAIT_POLICY values")
    args = ap.parse_args()
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | {cores()} cores | load "
        f"average {os.getloadavg()[0]:.1f} | {args.steps} steps of grokking:quick per cell"
    )
    print(
        f"{'threads':>7} {'OMP_WAIT_POLICY':>15} {'cores':>6} {'ms/step':>8} "
        f"{'CPU ms':>8} {'load':>5} slowdown",
        flush=True,
    )
    for policy in args.policies.split(","):
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY",)}
        env.pop("OMP_NUM_THREADS", None)
        if policy != "default":
            env["OMP_WAIT_POLICY"] = policy
        subprocess.run(
            [sys.executable, "-c", CHILD, str(args.steps), policy, str(cores())],
            env=env,
            check=True,
        )


if __name__ == "__main__":
    main()
