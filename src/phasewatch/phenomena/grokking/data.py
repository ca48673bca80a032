"""The data of a grokking run: every pair (a, b) mod p, its label and a seeded random
train/test split (Power et al. 2022; Nanda et al. 2023, arXiv 2301.05217, §3)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from phasewatch.phenomena.grokking.config import OPERATIONS, GrokkingConfig


@dataclass(frozen=True)
class ModularData:
    """Every pair (a, b) with its label and split.

    Attributes:
        p: the modulus.
        a, b, labels: (n_pairs,) int64; ``labels = op(a, b) mod p``.
        train: (n_pairs,) bool, the random training split.
    """

    p: int
    a: Int[Tensor, " n"]
    b: Int[Tensor, " n"]
    labels: Int[Tensor, " n"]
    train: Bool[Tensor, " n"]

    def tokens(self) -> Int[Tensor, "n 3"]:
        """The ``a b =`` token sequences (``=`` is token p)."""
        return torch.stack([self.a, self.b, torch.full_like(self.a, self.p)], dim=-1)


def make_data(cfg: GrokkingConfig, seed: int) -> ModularData:
    """All pairs for ``cfg.op`` mod ``cfg.p`` and a seeded random train split.

    The pairs are ordered a-major (index ``a · p + b``; division drops b = 0). The split
    shuffles the pairs and takes the first ``int(train_frac · n_pairs)``, as in Nanda et
    al.'s code (p = 113, 30% → 3,830 train / 8,939 test).
    """
    p = cfg.p
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).unbind(-1)
    if cfg.op == "div":
        keep = b != 0
        a, b = a[keep], b[keep]
    labels = OPERATIONS[cfg.op](a, b, p)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(a), generator=g)
    train = torch.zeros(len(a), dtype=torch.bool)
    train[order[: int(cfg.train_frac * len(a))]] = True
    return ModularData(p=p, a=a, b=b, labels=labels, train=train)
