"""One seed of a superposition run: the toy model, its data and its measures
(:class:`SuperpositionTask`), the batched-seeds data and a store-free training loop
(:func:`fit`).

See :mod:`phasewatch.phenomena.superposition` for the phenomenon, its metrics and presets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from einops import rearrange
from jaxtyping import Float, Int
from torch import Tensor

from phasewatch.config import TrainConfig
from phasewatch.phenomena.superposition import geometry as geo
from phasewatch.phenomena.superposition.config import SuperpositionConfig
from phasewatch.phenomena.superposition.data import data_rng, sample_features
from phasewatch.phenomena.superposition.model import (
    FusedToyLoss,
    GramToyLoss,
    ToyModel,
    default_init_std,
    gram_is_cheaper,
    weighted_mse,
)
from phasewatch.training.trainer import learning_rate, make_optimizer


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
        """The task of ``cfg``'s instance grid (:meth:`SuperpositionConfig.grid`) with the
        seed and device of ``train``."""
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

    def instance_losses(self, x: Float[Tensor, "instances batch n"]) -> Float[Tensor, " instances"]:
        """Per-instance importance-weighted squared error of ``x`` (autograd path; hook
        points fire): batch mean of Σ_i I_i (x_i − x'_i)² (Elhage et al. 2022)."""
        return weighted_mse(self.model(x), x, self.importances)

    def train_loss(self, step: int) -> Float[Tensor, ""]:
        """Total loss (sum over instances) on step's batch; its backward is the fused
        closed-form gradient of :class:`FusedToyLoss` (same maths as autograd)."""
        x = self.batch_at(step)
        return FusedToyLoss.apply(x, self.model.W, self.model.b, self.importances).sum()

    def per_sample_loss(self, step: int) -> Float[Tensor, " batch"]:
        """Each example's loss on step's batch, summed over instances:
        ``Σ_k Σ_i I_ki (x_kbi − x'_kbi)²`` (autograd path; its batch mean is
        :meth:`train_loss`). Gives the signals their probe size and per-sample losses."""
        x = self.batch_at(step)  # (I, B, n)
        err = (self.model(x) - x).pow(2) * self.importances[:, None, :]
        return err.sum(dim=(0, 2))

    def probe_outputs(
        self, step: int, rows: Int[Tensor, " m"] | None = None
    ) -> Float[Tensor, "rows instances_n"]:
        """The reconstructions x' of step's batch (only its examples ``rows`` if given),
        one row per batch example with every instance's output side by side (a regression
        model: no logits, so the ``logit_scale`` precursor does not apply;
        ``ntk_alignment`` uses these)."""
        x = self.batch_at(step)  # (I, B, n)
        if rows is not None:
            x = x[:, rows.to(x.device)]
        return rearrange(self.model(x), "k b n -> b (k n)")

    def probe_targets(self, step: int) -> Float[Tensor, "batch instances_n"]:
        """The regression targets of :meth:`probe_outputs`: the inputs x themselves."""
        return rearrange(self.batch_at(step), "k b n -> b (k n)")

    @staticmethod
    def stacked_loss(
        tasks: Sequence[SuperpositionTask], params: dict[str, Tensor], step: int
    ) -> Float[Tensor, " members"]:
        """For batched seeds: the (K,) total losses of K members from stacked parameters
        ``W`` (K, instances, m, n) and ``b`` (K, instances, n). The members' instances are
        concatenated into one instance dimension, each member's batch from its own seed
        (the same numbers as :meth:`batch_at`). For small n on the CPU
        (:func:`~.model.gram_is_cheaper`) the loss is :class:`GramToyLoss`,
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
        """The metrics of one eval step on the fixed eval batch (keys in the package
        docstring): total and per-instance loss, D*, represented features, every feature's
        dimensionality D_i (``dim/<k·n + j>``) and the share at a paper fraction
        (Elhage et al. 2022, §"The Geometry of Superposition")."""
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
        flat = rearrange(dims, "k j -> (k j)")  # instance-major: index k·n + j
        out.update({f"dim/{i}": v for i, v in enumerate(flat.tolist())})
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


def fit(
    task: SuperpositionTask, train: TrainConfig, on_step: Callable[[], None] | None = None
) -> list[float]:
    """Train ``task`` without a run store, with the trainer's optimiser and learning-rate
    schedule; returns the total loss of every ``train.eval_every``-th step. ``on_step`` is
    called after every step (a progress bar). Used by
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
        if on_step is not None:
            on_step()
    return curve
