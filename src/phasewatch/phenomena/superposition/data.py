"""The data of the superposition toy models (Elhage et al. 2022, "Toy Models of
Superposition", §"Demonstrating Superposition"): each feature is Uniform[0, 1) with
probability 1 − S (its density) and 0 otherwise, drawn from per-step seeded streams."""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor


def data_rng(seed: int, step: int | None) -> np.random.Generator:
    """The random stream of training update ``step`` (or, for None, of the eval batch):
    a PCG64 generator seeded from (seed, step) alone, so a resumed run sees the same data.
    (numpy's PCG64 draws float32 about twice as fast as torch's CPU generator, and drawing
    is the largest cost of a step at n = 200.)"""
    return np.random.default_rng([1, seed, step] if step is not None else [2, seed])


def sample_features(
    densities: Float[Tensor, " instances"], n: int, batch: int, rng: np.random.Generator
) -> Float[Tensor, "instances batch n"]:
    """A batch from the paper's distribution: x_i ~ U[0, 1) with probability p, else 0.

    One uniform draw u per entry does both jobs: the feature is active when u < p, and
    then 1 − u/p is Uniform(0, 1] — the same distribution as separate mask and value
    draws, at half the random numbers; x = max(0, 1 − u/p) is two in-place passes.
    """
    neg_inv_p = (-1.0 / densities.to(torch.float32).cpu())[:, None, None]  # (I, 1, 1)
    u = torch.from_numpy(rng.random((len(densities), batch, n), dtype=np.float32))  # (I, B, n)
    return u.mul_(neg_inv_p).add_(1.0).clamp_(min=0.0)
