"""Seeded random streams shared by the phenomena.

A run draws its initialisation, training batches and evaluation sets from separate
streams, each a function of ``(seed, stream, step)`` alone, so a resumed or re-run seed
sees the same numbers and no stream shifts when another one draws more.
"""

from __future__ import annotations

import numpy as np
import torch


def generator(seed: int, stream: int, step: int = 0) -> torch.Generator:
    """A CPU generator determined by ``(seed, stream, step)`` alone.

    The three integers are mixed by numpy's ``SeedSequence`` (so neighbouring streams and
    steps never collide) into one 64-bit seed for ``torch.Generator``.

    Args:
        seed: the run's seed.
        stream: which stream (each phenomenon numbers its own: train, eval, init, ...).
        step: training update (steps) for per-step streams, else 0.
    """
    state = np.random.SeedSequence([seed, stream, step]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))
