"""The grokking run's config: the modular-arithmetic task and the one-layer model's shape
(Power et al. 2022, Table 1; Nanda et al. 2023, arXiv 2301.05217, §3)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from phasewatch.config import require, require_choice
from phasewatch.models import TransformerConfig


def _inverse(b: Int[Tensor, " n"], p: int) -> Int[Tensor, " n"]:
    """b^{-1} mod p for every entry (Fermat: b^{p-2}); b must be non-zero."""
    return torch.tensor([pow(int(x), p - 2, p) for x in b.tolist()], dtype=b.dtype)


# The operations of Power et al. 2022 (Table 1), as functions of (a, b) mod p: the allowed
# values of GrokkingConfig.op. Division is a · b^{-1} and skips b = 0.
OPERATIONS: dict[str, Callable[[Tensor, Tensor, int], Tensor]] = {
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
    "div": lambda a, b, p: (a * _inverse(b, p)) % p,
    "x2+y2": lambda a, b, p: (a * a + b * b) % p,
    "x2+xy+y2": lambda a, b, p: (a * a + a * b + b * b) % p,
    "x3+xy": lambda a, b, p: (a * a * a + a * b) % p,
}


def _is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin (exact for every n < 3.3e24; fast for any size)."""
    if n < 2:
        return False
    bases = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)
    if n in bases:
        return True
    if any(n % b == 0 for b in bases):
        return False
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for b in bases:
        x = pow(b, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


@dataclass(frozen=True)
class GrokkingConfig:
    """Task and model of a grokking run.

    Attributes:
        p: the modulus, a prime >= 3.
        op: the operation (Power et al. 2022): add, sub, mul, div, x2+y2, x2+xy+y2, x3+xy.
        train_frac: fraction of the pairs in the training set, in (0, 1).
        d_model, n_heads, d_head, d_mlp: the one-layer transformer's shape.
        fast: compute only the read-out position's path (readout_logits): the same maths
            as the full-sequence forward, about 3x faster; --no-fast runs every position.

    Raises:
        ConfigError: on a non-prime or too small p, an unknown op, train_frac outside
            (0, 1) or leaving the training or test set empty, or a dimension < 1.
    """

    p: int = 113
    op: str = "add"
    train_frac: float = 0.3
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    fast: bool = True

    def __post_init__(self) -> None:
        require(_is_prime(self.p) and self.p >= 3, "p", "a prime >= 3 (e.g. 59, 97, 113)", self.p)
        require_choice("op", self.op, OPERATIONS)
        require(0 < self.train_frac < 1, "train_frac", "a float in (0, 1)", self.train_frac)
        n, n_train = self.n_pairs, int(self.train_frac * self.n_pairs)
        require(
            1 <= n_train < n,
            "train_frac",
            f"a fraction giving >= 1 training and >= 1 test pair of the {n:,} pairs "
            f"(here {n_train:,} training pairs), e.g. {max(1 / n, 0.3):.3g}",
            self.train_frac,
        )
        for name in ("d_model", "n_heads", "d_head", "d_mlp"):
            require(getattr(self, name) >= 1, name, "an integer >= 1", getattr(self, name))

    @property
    def n_pairs(self) -> int:
        """The number of (a, b) pairs: p², or p(p - 1) for div (b = 0 skipped)."""
        return self.p * (self.p - 1) if self.op == "div" else self.p * self.p

    def memory_bytes(self) -> int:
        """A rough upper bound of the peak memory of full-batch training, in bytes: weights,
        gradients and Adam moments (4 float32 per parameter), the int64 data, and the
        activations and logits of every pair kept for the backward pass (x3)."""
        d, p = self.d_model, self.p
        attn = 4 * d * self.n_heads * self.d_head
        params = (p + 1) * d + d * p + 3 * d + attn + 2 * d * self.d_mlp
        acts = 3 * (d + self.d_mlp) + 9 * self.n_heads + p  # floats per pair
        return 16 * params + self.n_pairs * (32 + 12 * acts)

    def transformer(self) -> TransformerConfig:
        """The one-layer model on ``a b =`` (vocabulary p + 1, context 3, p output classes)."""
        return TransformerConfig(
            d_vocab=self.p + 1,
            d_vocab_out=self.p,
            n_ctx=3,
            d_model=self.d_model,
            n_heads=self.n_heads,
            d_head=self.d_head,
            d_mlp=self.d_mlp,
            n_layers=1,
        )
