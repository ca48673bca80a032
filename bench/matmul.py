"""The plain-matmul reference rate the benches compare a training step against."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def matmul_gflops(
    shape: tuple[int, int, int],
    budget: float = 1.0,
    clock: Callable[[], float] = time.process_time,
) -> float:
    """GFLOP/s of a plain float32 ``(m, k) @ (k, n)`` matmul of ``shape`` repeated for
    ``budget`` seconds of ``clock`` (default CPU seconds; ``time.perf_counter`` for wall)."""
    m, k, n = shape
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b
    t0, reps = clock(), 0
    while clock() - t0 < budget:
        a @ b
        reps += 1
    return 2 * m * k * n * reps / (clock() - t0) / 1e9
