"""The superposition run's config: toy model, data distribution and instance grid
(Elhage et al. 2022, "Toy Models of Superposition"), and the authors' optimiser."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from phasewatch.config import require

# The optimiser of the authors' notebook (toy_models.ipynb), as TrainConfig fields: AdamW
# lr 1e-3 constant with torch's default weight decay 0.01 and betas (0.9, 0.999).
NOTEBOOK_TRAIN = dict(lr=1e-3, weight_decay=0.01, beta1=0.9, beta2=0.999, warmup_steps=0)


@dataclass(frozen=True)
class SuperpositionConfig:
    """Toy model, data distribution and instance grid of a superposition run.

    Attributes:
        n: number of input features (the paper's n), an integer >= 1.
        m: hidden dimensions (the paper's m), >= 1; m >= n is allowed (no superposition).
        n_densities: density levels, log-spaced from density_max down to density_min.
        density_max: highest feature density 1 − S, in (0, 1].
        density_min: lowest feature density 1 − S, in (0, density_max].
        importance_decay: feature importance I_i = importance_decay**i, > 0 (1 = uniform).
        n_importances: > 1 makes an importance × density grid: the last feature's importance
            relative to I_0 runs log-spaced from importance_min to importance_max.
        importance_min: lowest relative importance of the last feature (grid only), > 0.
        importance_max: highest relative importance of the last feature (grid only).
        replicas: independently initialised copies of every grid cell; tables and report
            keep the lowest-loss one (gradient descent can stall in a local minimum).
        batch: examples per step, fresh every step (the paper: 1,024).
        init_std: std of W's initial entries; 0 = the authors' notebook's effective
            Xavier std sqrt(2 / (m (n + instances))).
        norm_threshold: a feature is represented when its column norm ‖W_i‖ exceeds this.

    Raises:
        ConfigError: on a count < 1, a density outside (0, 1] or above density_max, a
            non-positive importance, importance_max < importance_min, init_std < 0 or
            norm_threshold <= 0.
    """

    n: int = 5
    m: int = 2
    n_densities: int = 10
    density_max: float = 1.0
    density_min: float = 0.05
    importance_decay: float = 0.9
    n_importances: int = 1
    importance_min: float = 0.1
    importance_max: float = 10.0
    replicas: int = 1
    batch: int = 1024
    init_std: float = 0.0
    norm_threshold: float = 0.5

    def __post_init__(self) -> None:
        for name in ("n", "m", "n_densities", "n_importances", "replicas", "batch"):
            v = getattr(self, name)
            require(isinstance(v, int) and v >= 1, name, "an integer >= 1", v)
        require(0 < self.density_max <= 1, "density_max", "a float in (0, 1]", self.density_max)
        require(
            0 < self.density_min <= self.density_max,
            "density_min",
            f"a float in (0, density_max={self.density_max:g}]",
            self.density_min,
        )
        require(
            self.importance_decay > 0,
            "importance_decay",
            "a float > 0 (importances must be positive)",
            self.importance_decay,
        )
        require(self.importance_min > 0, "importance_min", "a float > 0", self.importance_min)
        require(
            self.importance_max >= self.importance_min,
            "importance_max",
            f"a float >= importance_min={self.importance_min:g}",
            self.importance_max,
        )
        require(self.init_std >= 0, "init_std", "a float >= 0 (0 = notebook Xavier)", self.init_std)
        require(self.norm_threshold > 0, "norm_threshold", "a float > 0", self.norm_threshold)

    @property
    def instances(self) -> int:
        """Models trained side by side: n_importances × n_densities × replicas."""
        return self.n_importances * self.n_densities * self.replicas

    def density_levels(self) -> Float[Tensor, " d"]:
        """The density levels, log-spaced from density_max to density_min (float64)."""
        t = torch.linspace(0, 1, self.n_densities, dtype=torch.float64)
        return self.density_max * (self.density_min / self.density_max) ** t

    def relative_importance_levels(self) -> Float[Tensor, " a"]:
        """The last feature's relative importance levels (just 1.0 without a grid)."""
        if self.n_importances == 1:
            return torch.ones(1, dtype=torch.float64)
        t = torch.linspace(0, 1, self.n_importances, dtype=torch.float64)
        return self.importance_min * (self.importance_max / self.importance_min) ** t

    def grid(self) -> tuple[Float[Tensor, " instances"], Float[Tensor, "instances n"]]:
        """Per-instance density and importances; instance k = (a · n_densities + d) ·
        replicas + r for importance level a, density level d and replica r."""
        dens = self.density_levels().repeat(self.n_importances)  # (cells,)
        base = self.importance_decay ** torch.arange(self.n, dtype=torch.float64)  # (n,)
        imp = base.repeat(len(dens), 1)  # (cells, n)
        if self.n_importances > 1:
            rel = self.relative_importance_levels().repeat_interleave(self.n_densities)
            imp[:, -1] = rel * base[0]
        return dens.repeat_interleave(self.replicas), imp.repeat_interleave(self.replicas, 0)
