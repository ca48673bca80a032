"""One seed of a superposition run: its config, the task (model, data, measures) and a
store-free training loop (:func:`fit`).

See :mod:`phasewatch.phenomena.superposition` for the phenomenon, its metrics and presets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from phasewatch.config import TrainConfig, require
from phasewatch.phenomena.superposition import geometry as geo
from phasewatch.phenomena.superposition.model import (
    FusedToyLoss,
    GramToyLoss,
    ToyModel,
    data_rng,
    default_init_std,
    gram_is_cheaper,
    sample_features,
    weighted_mse,
)
from phasewatch.training.trainer import learning_rate, make_optimizer


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


class SuperpositionTask:
    """One seed of a superposition run: the toy model, its data and its measures.

    Args:
        densities: (instances,) feature density 1 − S of each instance, in (0, 1].
        importances: (instances, n) importance I_i of each feature, > 0.
        m: hidden dimensions.
        seed: initialisation and data seed; step s's batch comes from (seed, s) only.
        batch: examples per step.
        init_std: std of W's initial entries (0 = :func:`default_init_std`).
        norm_threshold: ‖W_i‖ above which a feature counts as represented.
        replicas: consecutive instances that are copies of one cell; they share the eval
            batch, so their losses compare weights, not samples.
        device: torch device string.
    """

    def __init__(
        self,
        densities: Float[Tensor, " instances"],
        importances: Float[Tensor, "instances n"],
        m: int,
        *,
        seed: int = 0,
        batch: int = 1024,
        init_std: float = 0.0,
        norm_threshold: float = 0.5,
        replicas: int = 1,
        device: str = "cpu",
    ) -> None:
        self.dev = torch.device(device)
        self.seed, self.batch, self.m = seed, batch, m
        self.instances, self.n = importances.shape
        self.threshold, self.replicas = norm_threshold, replicas
        self.densities = densities.to(self.dev)
        self.neg_inv_density = -1.0 / self.densities.to(torch.float32).cpu()  # as sample_features
        self.importances = importances.to(torch.float32).to(self.dev)
        std = init_std or default_init_std(m, self.n, self.instances)
        g = torch.Generator().manual_seed(seed)
        self.model = ToyModel(self.instances, self.n, m, std, generator=g).to(self.dev)
        self._eval_x: Tensor | None = None

    @classmethod
    def from_config(cls, cfg: SuperpositionConfig, train: TrainConfig) -> SuperpositionTask:
        dens, imp = cfg.grid()
        return cls(
            dens,
            imp,
            cfg.m,
            seed=train.seed,
            batch=cfg.batch,
            init_std=cfg.init_std,
            norm_threshold=cfg.norm_threshold,
            replicas=cfg.replicas,
            device=train.device,
        )

    def batch_at(self, step: int) -> Float[Tensor, "instances batch n"]:
        """The training batch of update ``step``, derived from (seed, step) alone."""
        rng = data_rng(self.seed, step)
        return sample_features(self.densities, self.n, self.batch, rng).to(self.dev)

    def eval_batch(self) -> Float[Tensor, "instances batch n"]:
        """A fixed batch from the training distribution (its own seeded stream), the same
        for the replicas of a cell."""
        if self._eval_x is None:
            r = self.replicas
            x = sample_features(self.densities[::r], self.n, self.batch, data_rng(self.seed, None))
            self._eval_x = x.repeat_interleave(r, dim=0).to(self.dev)
        return self._eval_x

    def instance_losses(self, x: Tensor) -> Float[Tensor, " instances"]:
        return weighted_mse(self.model(x), x, self.importances)

    def train_loss(self, step: int) -> Tensor:
        """Total loss (sum over instances) on step's batch; its backward is the fused
        closed-form gradient of :class:`FusedToyLoss` (same maths as autograd)."""
        x = self.batch_at(step)
        return FusedToyLoss.apply(x, self.model.W, self.model.b, self.importances).sum()

    @staticmethod
    def stacked_loss(
        tasks: Sequence[SuperpositionTask], params: dict[str, Tensor], step: int
    ) -> Float[Tensor, " members"]:
        """For batched seeds: the (K,) total losses of K members from stacked parameters
        ``W`` (K, instances, m, n) and ``b`` (K, instances, n). The members' instances are
        concatenated into one instance dimension, each member's batch from its own seed
        (the same numbers as :meth:`batch_at`). For small n on the CPU
        (:func:`~.superposition_model.gram_is_cheaper`) the loss is :class:`GramToyLoss`,
        with the data drawn chunk by chunk; otherwise :class:`FusedToyLoss` on the
        concatenated batch. Only float rounding differs from a single member's run."""
        W, b = params["W"], params["b"]
        k, ni, m, n = W.shape
        imp = torch.cat([t.importances for t in tasks])  # (K*I, n)
        if W.device.type == "cpu" and gram_is_cheaper(n, m):
            fill = _StackedBatch(tasks, step)
            loss = GramToyLoss.apply(W.flatten(0, 1), b.flatten(0, 1), imp, fill, fill.batch)
        else:
            x = torch.cat([t.batch_at(step) for t in tasks])  # (K*I, B, n)
            loss = FusedToyLoss.apply(x, W.flatten(0, 1), b.flatten(0, 1), imp)
        return loss.view(k, ni).sum(1)

    def weights(self) -> Float[Tensor, "instances m n"]:
        """W in float64 on the CPU, detached."""
        return self.model.W.detach().double().cpu()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        losses = self.instance_losses(self.eval_batch()).double().cpu()
        W = self.weights()
        norms = geo.feature_norms(W)  # (I, n)
        dims = geo.feature_dimensionality(W)  # (I, n)
        dstar = geo.dimensions_per_feature(W)  # (I,)
        rep = norms > self.threshold
        classes = geo.classify(dims, norms, self.threshold)
        at = np.isin(classes, [name for name, _, _ in geo.FRACTIONS]).sum()
        out = {
            "train/loss": float(losses.sum()),
            "superposition/min_dstar": float(dstar.min()),
            "geometry/at_fraction": float(at / max(int(rep.sum()), 1)),
        }
        for k in range(self.instances):
            out[f"loss/{k}"] = float(losses[k])
            out[f"dstar/{k}"] = float(dstar[k])
            out[f"represented/{k}"] = float(rep[k].sum())
        out.update({f"dim/{i}": v for i, v in enumerate(dims.reshape(-1).tolist())})
        return out


class _StackedBatch:
    """Step ``step``'s training batches of K members, written on demand for a range of
    the concatenated instances in feature-major layout (instances, n, batch): each
    member's generator draws its instances in order, so the numbers are those of
    :meth:`SuperpositionTask.batch_at` (partial draws continue one stream)."""

    def __init__(self, tasks: Sequence[SuperpositionTask], step: int) -> None:
        self.rngs = [data_rng(t.seed, step) for t in tasks]
        self.per_member, self.n, self.batch = tasks[0].instances, tasks[0].n, tasks[0].batch
        neg = torch.cat([t.neg_inv_density for t in tasks])
        self.neg_inv_p = neg[:, None, None]  # (K*I, 1, 1), as in sample_features
        self.u: np.ndarray | None = None

    def __call__(self, lo: int, hi: int, out: Tensor) -> Float[Tensor, "chunk n batch"]:
        if self.u is None or len(self.u) < hi - lo:
            self.u = np.empty((hi - lo, self.batch, self.n), np.float32)
        u, ni = self.u[: hi - lo], self.per_member
        for k in range(lo // ni, (hi - 1) // ni + 1):
            a, z = max(lo, k * ni), min(hi, (k + 1) * ni)
            self.rngs[k].random(dtype=np.float32, out=u[a - lo : z - lo])  # (z-a, B, n)
        torch.mul(torch.from_numpy(u).transpose(1, 2), self.neg_inv_p[lo:hi], out=out)
        return out.add_(1.0).clamp_(min=0.0)  # max(0, 1 − u/p)


def fit(task: SuperpositionTask, train: TrainConfig) -> list[float]:
    """Train ``task`` without a run store, with the trainer's optimiser and learning-rate
    schedule; returns the total loss of every ``train.eval_every``-th step. Used by
    :func:`~phasewatch.phenomena.superposition.capacity` and the benchmark."""
    opt = make_optimizer(task.model, train)
    curve = []
    for step in range(train.steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(train, step)
        loss = task.train_loss(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % train.eval_every == 0:
            curve.append(loss.item())
    return curve
