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
The whole-run analysis (:func:`~phasewatch.phenomena.superposition.geometry.weight_tables`)
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

Code: the toy model, its data and its fused loss are in :mod:`.model`; the
config, one seed's task and :func:`fit` in :mod:`.task`; the weight geometry
in :mod:`.geometry`; this module holds the phenomenon, its presets and the
capacity study, and re-exports the public names of the first two.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from phasewatch.config import OnsetRule, TrainConfig, require
from phasewatch.phenomena.base import Findings, Preset, register
from phasewatch.phenomena.superposition import geometry as geo
from phasewatch.phenomena.superposition.model import (
    FusedToyLoss,
    ToyModel,
    data_rng,
    default_init_std,
    sample_features,
    weighted_mse,
)
from phasewatch.phenomena.superposition.task import SuperpositionConfig, SuperpositionTask, fit

__all__ = [
    "FusedToyLoss",
    "Superposition",
    "SuperpositionConfig",
    "SuperpositionTask",
    "ToyModel",
    "capacity",
    "data_rng",
    "default_init_std",
    "fit",
    "sample_features",
    "weighted_mse",
]


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
    and the Welch bound for the same m and n (:mod:`.geometry`), and a
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
