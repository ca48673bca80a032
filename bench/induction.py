"""Training-step speed of the induction presets: the previous attention path against the
current one, side by side in one run, next to a plain matmul.

For each preset (olsson-2layer and its 1-layer control), times full AdamW updates (data,
forward, backward, optimiser) with the training path ``fast_logits`` (fused QKV
projection and :class:`~phasewatch.models.transformer.CausalAttention`) and with the
previous path (``explicit``, kept here for the comparison: per-head ``einsum``
projections, scores, scale and mask in one ``baddbmm``, softmax and ``bmm``), alternating
the two for ``--rounds`` rounds and reporting the median per-step wall and CPU seconds.
Both run the same FLOPs (counted by ``torch.utils.flop_counter`` on the previous path);
GFLOP/s and the share of the plain-matmul rate use CPU time, as does the matmul of the
step's largest shape (batch·n_ctx × d_model @ d_model × vocab), timed in the same run.
On a machine shared with other jobs, CPU time is the better guide to the idle speed.

    python bench/induction.py [--steps 30] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from matmul import matmul_gflops
from torch.utils.flop_counter import FlopCounterMode

from phasewatch.models import NormedTransformer, fast_logits
from phasewatch.phenomena import get
from phasewatch.phenomena.induction.task import next_token_loss
from phasewatch.store.env import describe
from phasewatch.training.trainer import learning_rate, make_optimizer


def explicit_logits(model: NormedTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """The previous training path (before the fused attention): same function, more
    memory passes."""
    t = tokens.shape[1]
    mask = torch.full((t, t), float("-inf"), dtype=model.unembed.W_U.dtype).triu(1)  # (T, T)
    x = model.embed.W_E[tokens] + model.pos_embed.W_pos[:t]  # (B, T, D)
    for block in model.blocks:
        a, h = block.attn, model.normalize(x)
        b, n = h.shape[0], a.W_Q.shape[0]
        q, k, v = (
            torch.einsum("bpd,hde->bhpe", h, w).reshape(b * n, t, -1)  # (B*H, T, dh)
            for w in (a.W_Q, a.W_K, a.W_V)
        )
        scores = torch.baddbmm(mask, q, k.transpose(1, 2), alpha=a.scale)  # (B*H, T, T)
        z = torch.bmm(scores.softmax(-1), v).view(b, n, t, -1)  # (B, H, T, dh)
        x = x + torch.einsum("bhpe,hem->bpm", z, a.W_O)
        if block.mlp is not None:
            x = x + block.mlp(model.normalize(x))
    return model.normalize(x) @ model.unembed.W_U


PATHS = {"explicit (before)": explicit_logits, "fused (now)": fast_logits}


def time_steps(preset: str, steps: int, logits) -> tuple[float, float]:
    """Wall and CPU seconds per training step of ``preset`` (mean over steps 3..steps)."""
    pre = get("induction").presets[preset]
    task = get("induction").build(pre.task, pre.train)
    opt = make_optimizer(task.model, pre.train)
    t0 = c0 = 0.0
    for step in range(steps + 3):
        if step == 3:  # exclude warm-up iterations (allocator, thread pool)
            t0, c0 = time.perf_counter(), time.process_time()
        for g in opt.param_groups:
            g["lr"] = learning_rate(pre.train, step)
        tokens = task.batch(step)
        loss = next_token_loss(logits(task.model, tokens), tokens)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps


def step_flops(preset: str) -> tuple[float, tuple[int, int, int]]:
    """FLOPs of one forward + backward pass of the previous path (matrix products) and
    the (rows, inner, cols) of the step's largest matrix product."""
    pre = get("induction").presets[preset]
    task = get("induction").build(pre.task, pre.train)
    tokens = task.batch(0)
    with FlopCounterMode(display=False) as counter:
        next_token_loss(explicit_logits(task.model, tokens), tokens).backward()
    c = pre.task
    return float(counter.get_total_flops()), (c.batch_size * c.n_ctx, c.d_model, c.vocab)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30, help="timed steps per path and round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    env = describe("cpu")
    print(
        f"machine: {env['cpu']} | {args.threads} threads | torch {env['torch']} | "
        f"{platform.system()} | {args.steps} steps x {args.rounds} rounds | "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'preset':<15}{'path':<19}{'s/step':>8}{'cpu s':>8}{'GFLOP/s':>9}"
        f"{'matmul':>8}{'share':>7}{'speed-up (cpu, wall)':>22}"
    )
    for preset in ("olsson-2layer", "olsson-1layer"):
        flops, shape = step_flops(preset)
        times: dict[str, list[tuple[float, float]]] = {p: [] for p in PATHS}
        for _ in range(args.rounds):
            for label, fn in PATHS.items():
                times[label].append(time_steps(preset, args.steps, fn))
        mm = matmul_gflops(shape)
        med = {p: tuple(statistics.median(x) for x in zip(*ts)) for p, ts in times.items()}
        base_wall, base_cpu = med["explicit (before)"]
        for label, (wall, cpu) in med.items():
            rate = flops / cpu / 1e9
            print(
                f"{preset:<15}{label:<19}{wall:>8.4f}{cpu:>8.4f}{rate:>9.1f}{mm:>8.1f}"
                f"{rate / mm:>7.0%}{base_cpu / cpu:>13.2f}x, {base_wall / wall:.2f}x"
            )
        print(f"{'':<15}({flops / 1e9:.2f} GFLOP per step)")
    print(
        f"(matmul: {shape[0]}x{shape[1]} @ {shape[1]}x{shape[2]} float32, GFLOP per CPU s; "
        f"load average now {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
