"""Superposition in toy ReLU models (Elhage et al. 2022, "Toy Models of Superposition").

The model x' = ReLU(WᵀWx + b), W ∈ R^{m×n}, compresses n sparse features into m < n
dimensions. Each feature is Uniform[0, 1) with probability 1 − S (its density) and 0
otherwise; the loss is the importance-weighted squared error Σ_i I_i (x_i − x'_i)²,
averaged over the batch. Many instances — one per density (and, for the phase diagram,
per relative importance) — train at once along a leading instance dimension: one module
with W of shape (instances, m, n), one AdamW step for all. Instances never interact: the
total loss is the sum of theirs and AdamW updates each weight on its own.

Metrics (every ``eval_every`` steps; instance k, feature j): ``train/loss`` (summed over
instances on a fixed batch from the training distribution), ``loss/<k>``, ``dstar/<k>``
(D* = m/‖W‖_F²), ``represented/<k>`` (features with ‖W_j‖ > ``norm_threshold``),
``dim/<k·n + j>`` (the feature dimensionality D_j of instance k: one indexed family so
that detectors and heatmaps see every feature), ``superposition/min_dstar`` and
``geometry/at_fraction`` (share of represented features within 0.02 of a paper fraction).
The whole-run analysis (:func:`~phasewatch.phenomena.superposition_geometry.weight_tables`)
writes ``tables/{instances,features,gram,capacity}.parquet`` (and ``phase_diagram`` for
an importance × density grid).

Presets (the authors' notebook, toy_models.ipynb: AdamW lr 1e-3 constant with torch's
default weight decay 0.01 and betas (0.9, 0.999), batch 1,024, 10,000 steps):
    intro: n = 5, m = 2, I_i = 0.9^i, densities 1 − S = 20^(−linspace(0, 1, 10)) (the
        introduction's figure).
    geometry: n = 200, m = 20, I = 1, 20 densities 20^(−linspace(0, 1, 20)), i.e.
        1/(1 − S) from 1 to 20, as in the notebook's "feature geometry" cells ("The
        Geometry of Superposition").
    phase-diagram: n = 2, m = 1; the second feature's importance relative to the first
        on a 12-point log grid in [0.1, 10] × 12 densities in [0.01, 1] ("Superposition
        as a Phase Change"; check: the grid ranges were read from the paper's figure),
        each cell trained from 6 initialisations and the lowest-loss one kept: with one
        initialisation per cell (seed 0), 12 of the 20 cells with relative importance
        0.5-2 and density <= 0.05 stalled with both features on the same side of the line
        (or one dropped) instead of the antipodal pair, at a higher loss.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor, nn

from phasewatch.config import TrainConfig, require
from phasewatch.detect.onsets import OnsetRule
from phasewatch.models.hooks import HookPoint
from phasewatch.phenomena import superposition_geometry as geo
from phasewatch.phenomena.base import Findings, Preset, register


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


def default_init_std(m: int, n: int, instances: int) -> float:
    """The effective std of the notebook's ``xavier_normal_`` on its joint (instances, n, m)
    tensor: torch takes fan_in = n·m and fan_out = instances·m for a 3-D tensor."""
    return math.sqrt(2.0 / (m * (n + instances)))


_CHUNK_FLOATS = 1 << 19  # activations per chunk of the fused loss (2 MB in float32)


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


class ToyModel(nn.Module):
    """x' = ReLU(WᵀWx + b) for many instances at once.

    Source: Elhage et al. 2022, "Demonstrating Superposition" (the ReLU output model).

    Parameters: ``W`` (instances, m, n) — column W[k, :, i] is feature i's direction in
    instance k — and ``b`` (instances, n). Hook points: ``hook_hidden`` (instances, batch,
    m) = Wx and ``hook_out`` (instances, batch, n) = x'.
    """

    def __init__(self, instances: int, n: int, m: int, init_std: float, generator=None) -> None:
        super().__init__()
        W = torch.randn((instances, m, n), generator=generator) * init_std
        self.W = nn.Parameter(W)
        self.b = nn.Parameter(torch.zeros(instances, n))
        self.hook_hidden = HookPoint()
        self.hook_out = HookPoint()

    def forward(self, x: Float[Tensor, "instances batch n"]) -> Float[Tensor, "instances batch n"]:
        h = self.hook_hidden(torch.bmm(x, self.W.transpose(1, 2)))  # (I, B, m)
        return self.hook_out(torch.relu(torch.baddbmm(self.b[:, None, :], h, self.W)))


def weighted_mse(
    out: Float[Tensor, "instances batch n"],
    x: Float[Tensor, "instances batch n"],
    importances: Float[Tensor, "instances n"],
) -> Float[Tensor, " instances"]:
    """Per-instance loss: batch mean of Σ_i I_i (x_i − x'_i)² (Elhage et al. 2022)."""
    return (importances[:, None, :] * (x - out).pow(2)).sum(-1).mean(-1)


class FusedToyLoss(torch.autograd.Function):
    """Per-instance :func:`weighted_mse` of :class:`ToyModel` with its gradient formed in
    the forward pass, in closed form — the same maths as autograd with fewer passes over
    the (instances, batch, n) activations, taken in batch chunks of about 2 MB so that
    the passes stay in cache (~25% faster at n = 200; one chunk for the small presets).

    With h = xWᵀ, pre = hW + b, r = ReLU(pre) − x and g = (2/B) I ⊙ r ⊙ [pre > 0]:
    ∂L/∂b = Σ_batch g and ∂L/∂W = hᵀg + (gWᵀ)ᵀx. Hook points do not fire.
    ``chunk`` (examples per chunk, 0 = automatic) changes only float rounding.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Float[Tensor, "instances batch n"],
        W: Float[Tensor, "instances m n"],
        b: Float[Tensor, "instances n"],
        importances: Float[Tensor, "instances n"],
        chunk: int = 0,
    ) -> Float[Tensor, " instances"]:
        ni, B, n = x.shape
        chunk = chunk or max(1, _CHUNK_FLOATS // (ni * n))
        Wt, bias = W.transpose(1, 2), b[:, None, :]
        scale = (importances * (2.0 / B))[:, None, :]  # (I, 1, n)
        loss, dW, db = x.new_zeros(ni), torch.zeros_like(W), torch.zeros_like(b)
        for start in range(0, B, chunk):
            xc = x[:, start : start + chunk]  # (I, C, n)
            h = torch.bmm(xc, Wt)  # (I, C, m)
            r = torch.bmm(h, W).add_(bias).clamp_(min=0)  # (I, C, n): x'
            active = r > 0  # ReLU'(pre)
            r.sub_(xc)  # x' − x
            g = r * scale  # (2/B) I ⊙ r
            loss += torch.linalg.vecdot(g.reshape(ni, -1), r.reshape(ni, -1)) / 2
            g.mul_(active)  # (I, C, n): ∂L/∂pre
            dh = torch.bmm(g, Wt)  # (I, C, m)
            dW.baddbmm_(h.transpose(1, 2), g).baddbmm_(dh.transpose(1, 2), xc)  # (I, m, n)
            db += g.sum(1)
        ctx.save_for_backward(dW, db)
        return loss

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, Tensor, None, None]:
        dW, db = ctx.saved_tensors
        return None, dW * grad[:, None, None], db * grad[:, None], None, None


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
        concatenated into one instance dimension (each member's batch from its own seed);
        the fused loss chunks the batch for all K·I instances (only float rounding differs
        from a single member's run)."""
        W, b = params["W"], params["b"]
        k, ni, _, n = W.shape
        x = torch.cat([t.batch_at(step) for t in tasks])  # (K*I, B, n)
        imp = torch.cat([t.importances for t in tasks])  # (K*I, n)
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


def _events(cfg: SuperpositionConfig, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """``notes`` (e.g. m >= n) and the ``superposition`` summary for ``events.json``."""
    notes = []
    if cfg.m >= cfg.n:
        notes.append(
            f"m={cfg.m} >= n={cfg.n}: every feature can have its own dimension, "
            "so no superposition is expected."
        )
    summary = geo.summarise_tables(tables["instances"], tables["features"])
    return {
        "notes": notes,
        "superposition": {
            "n": cfg.n,
            "m": cfg.m,
            "instances": cfg.instances,
            "replicas": cfg.replicas,
            "norm_threshold": cfg.norm_threshold,
            **summary,
        },
    }


_NOTEBOOK_TRAIN = dict(lr=1e-3, weight_decay=0.01, beta1=0.9, beta2=0.999, warmup_steps=0)


class Superposition:
    """The superposition phenomenon (registered as ``superposition``)."""

    name = "superposition"
    config_cls = SuperpositionConfig
    # batched seeds: fields that change values but not shapes (instances are concatenated)
    batch_fields = (
        "density_max",
        "density_min",
        "importance_decay",
        "importance_min",
        "importance_max",
        "init_std",
        "norm_threshold",
    )
    default_preset = "intro"
    onsets = (
        # Some instance holds more than one feature per dimension (D* = m/‖W‖_F² ≤ 0.9);
        # small initial weights (D* ≫ 1) keep it from firing at step 0.
        OnsetRule("superposition", "superposition/min_dstar", "cross", "<=", 0.9),
    )
    presets = {
        "intro": Preset(
            task=SuperpositionConfig(),
            train=TrainConfig(  # tiny tensors: one thread beats two (no OpenMP overhead)
                steps=10_000,
                eval_every=100,
                checkpoint_every=1_000,
                threads=1,
                **_NOTEBOOK_TRAIN,
            ),
            description="Elhage et al. 2022 intro: n=5, m=2, I=0.9^i, 10 densities 1..1/20, "
            "10k steps (~1 min)",
        ),
        "geometry": Preset(
            task=SuperpositionConfig(n=200, m=20, n_densities=20, importance_decay=1.0),
            train=TrainConfig(
                steps=10_000, eval_every=200, checkpoint_every=2_000, **_NOTEBOOK_TRAIN
            ),
            description="Elhage et al. 2022 geometry: n=200, m=20, I=1, 20 densities "
            "1..1/20, 10k steps (~15 min on 1 busy core)",
        ),
        "phase-diagram": Preset(
            task=SuperpositionConfig(
                n=2,
                m=1,
                n_densities=12,
                density_min=0.01,
                importance_decay=1.0,
                n_importances=12,
                replicas=6,
            ),
            train=TrainConfig(
                steps=10_000, eval_every=200, checkpoint_every=2_000, **_NOTEBOOK_TRAIN
            ),
            description="Elhage et al. 2022 phase diagram: n=2, m=1, 12 relative "
            "importances 0.1..10 x 12 densities 1..0.01, best of 6 inits, 10k steps "
            "(~15 min on 1 busy core)",
        ),
    }

    def build(self, cfg: SuperpositionConfig, train: TrainConfig) -> SuperpositionTask:
        return SuperpositionTask.from_config(cfg, train)

    def checkpoint_measures(
        self,
        cfg: SuperpositionConfig,
        train: TrainConfig,
        checkpoints: Iterator[tuple[int, dict[str, Tensor]]],
        final: dict[str, Tensor],
    ) -> Findings:
        """Geometry of the final weights: per-instance and per-feature tables, Gram
        matrices, the capacity table and (for an importance grid) the phase diagram."""
        task = SuperpositionTask.from_config(cfg, train)
        task.model.load_state_dict(final)
        with torch.no_grad():
            losses = task.instance_losses(task.eval_batch()).double().cpu()
        dens, imp = cfg.grid()
        b = task.model.b.detach().double().cpu()
        tables = geo.weight_tables(
            task.weights(), b, dens, imp, losses, cfg.norm_threshold, replicas=cfg.replicas
        )
        if cfg.n_importances > 1:
            inst = tables["instances"]
            tables["phase_diagram"] = inst.loc[
                inst["best"],
                ["density", "relative_importance", "last_feature_phase", "represented"],
            ].rename(columns={"last_feature_phase": "phase"})
        return Findings([], _events(cfg, tables), tables)


register(Superposition())


def fit(task: SuperpositionTask, train: TrainConfig) -> list[float]:
    """Train ``task`` without a run store, with the trainer's optimiser and learning-rate
    schedule; returns the total loss of every ``train.eval_every``-th step. Used by
    :func:`capacity` and the benchmark."""
    from phasewatch.training.trainer import learning_rate, make_optimizer  # (import cycle)

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


def capacity(
    m: int,
    ns: Sequence[int],
    sparsities: Sequence[float],
    *,
    steps: int = 10_000,
    seed: int = 0,
    batch: int = 1024,
    norm_threshold: float = 0.5,
) -> pd.DataFrame:
    """How many features a trained toy model holds, against the worst-case bounds.

    For each n, one :class:`ToyModel` with one instance per sparsity (importance 1,
    the notebook's optimiser) is trained for ``steps`` steps; then, per (n, S):
    (a) represented features (‖W_i‖ > ``norm_threshold``), (b) their measured max, mean and
    max positive |cos|, (c) the Johnson–Lindenstrauss ε, the random-vector union-bound ε
    and the Welch bound for the same m and n (:mod:`superposition_geometry`), and a
    sentence comparing the worst-case bound with the measured typical interference.

    Args:
        m: hidden dimensions, >= 1.
        ns: feature counts, each >= 1.
        sparsities: S values, each in [0, 1) (density 1 − S in (0, 1]).
        steps, seed, batch: training length, seed and batch size.
        norm_threshold: ‖W_i‖ above which a feature counts as represented.

    Returns:
        One row per (n, S), ordered by n then S; columns as :func:`capacity_row` plus
        ``density``, ``loss`` and ``seconds`` (training time of that n).

    Raises:
        ConfigError: on m < 1, an empty list, n < 1, S outside [0, 1), steps < 1.
    """
    import time

    require(isinstance(m, int) and m >= 1, "m", "an integer >= 1", m)
    require(len(ns) > 0 and all(int(n) == n and n >= 1 for n in ns), "n", "integers >= 1", ns)
    require(
        len(sparsities) > 0 and all(0 <= s < 1 for s in sparsities),
        "sparsity",
        "floats in [0, 1) (density 1 - S in (0, 1])",
        sparsities,
    )
    train = TrainConfig(seed=seed, steps=steps, eval_every=max(steps, 1), **_NOTEBOOK_TRAIN)
    SuperpositionConfig(batch=batch, norm_threshold=norm_threshold)  # validates both
    dens = torch.tensor([1 - s for s in sparsities], dtype=torch.float64)
    rows = []
    for n in ns:
        imp = torch.ones(len(dens), int(n), dtype=torch.float64)
        task = SuperpositionTask(
            dens, imp, m, seed=seed, batch=batch, norm_threshold=norm_threshold
        )
        t0 = time.perf_counter()
        fit(task, train)
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            losses = task.instance_losses(task.eval_batch())
        W = task.weights()
        for k, s in enumerate(sparsities):
            rep = geo.represented(W[k], norm_threshold)
            stats = geo.interference(W[k], rep)
            row = geo.capacity_row(m, int(n), float(s), int(rep.sum()), stats)
            row.update(density=1 - float(s), loss=float(losses[k]), seconds=seconds)
            rows.append(row)
    return pd.DataFrame(rows)
