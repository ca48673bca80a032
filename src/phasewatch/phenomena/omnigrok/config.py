"""The Omnigrok run's config: data size, MLP shape and initialisation scale (Liu, Michaud &
Tegmark, ICLR 2023, arXiv 2210.01117, §3 "MNIST")."""

from __future__ import annotations

from dataclasses import dataclass

from phasewatch.config import require, require_choice

N_DIGITS = 1797  # images in scikit-learn's bundled 8×8 digits
N_TEST = 797  # the last images of the seeded permutation: never trained on
LOSSES = ("mse", "cross_entropy")


@dataclass(frozen=True)
class OmnigrokConfig:
    """An MLP with a scaled-up initialisation on scikit-learn's 8×8 digits.

    Attributes:
        n_train: training images (the paper's MNIST run uses 1,000 of 60,000; the digits
            set has 1,797 images: at most 1,000 train, the last 797 are the test set).
        width: units per hidden layer.
        depth: linear layers (depth - 1 hidden ReLU layers; the paper's MLP has 3).
        alpha: initialisation scale α: every default-initialised weight and bias is
            multiplied by α (the paper's grokking runs use α ≈ 8-9).
        loss: ``mse`` on one-hot targets (the paper's MNIST choice) or ``cross_entropy``.
    """

    n_train: int = 200
    width: int = 100
    depth: int = 3
    alpha: float = 8.0
    loss: str = "mse"

    def __post_init__(self) -> None:
        limit = N_DIGITS - N_TEST
        require(1 <= self.n_train <= limit, "n_train", f"an integer in 1..{limit}", self.n_train)
        require(self.width >= 1, "width", "an integer >= 1", self.width)
        require(self.depth >= 2, "depth", "an integer >= 2", self.depth)
        require(self.alpha > 0, "alpha", "a float > 0", self.alpha)
        require_choice("loss", self.loss, LOSSES)
