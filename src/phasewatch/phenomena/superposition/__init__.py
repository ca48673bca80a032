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
The whole-run analysis (:func:`~.geometry.weight_tables`)
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

Code: the config in :mod:`.config`, the data in :mod:`.data`, the toy model and its
fused losses in :mod:`.model`, one seed's task and :func:`~.task.fit` in :mod:`.task`,
the weight geometry in :mod:`.geometry`, the interference bounds in :mod:`.bounds`, the
whole-run tables in :mod:`.findings` and the capacity study in :mod:`.capacity`; this
module holds the presets and the registration.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor

from phasewatch.config import OnsetRule, TrainConfig
from phasewatch.phenomena.base import Findings, Preset, register
from phasewatch.phenomena.superposition.config import NOTEBOOK_TRAIN, SuperpositionConfig
from phasewatch.phenomena.superposition.findings import findings
from phasewatch.phenomena.superposition.task import SuperpositionTask

__all__ = ["Superposition", "SuperpositionConfig"]


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
                **NOTEBOOK_TRAIN,
            ),
            description="Elhage et al. 2022 intro: n=5, m=2, I=0.9^i, 10 densities 1..1/20, "
            "10k steps (~1 min)",
            # phasewatch calibrate on a run of this preset (seed 0, 10k steps), default grid,
            # at steps 1,000, 5,000 and 10,000 (2026-12-04): the rule recommends ε 1e-3,
            # γ 10 at all three (the grid's largest ε and smallest γ; λ̂ 32-39)
            signals={"llc": {"epsilon": 1e-3, "gamma": 10.0}},
        ),
        "geometry": Preset(
            task=SuperpositionConfig(n=200, m=20, n_densities=20, importance_decay=1.0),
            train=TrainConfig(
                steps=10_000, eval_every=200, checkpoint_every=2_000, **NOTEBOOK_TRAIN
            ),
            description="Elhage et al. 2022 geometry: n=200, m=20, I=1, 20 densities "
            "1..1/20, 10k steps (~15 min on 1 busy core)",
            # phasewatch calibrate --epsilons 3e-5,1e-4 --gammas 10,100 at steps 500 and
            # 1,000 of a run of this preset (seed 0, --steps 1000; 2026-12-04): the rule
            # recommends ε 1e-4, γ 100 at 1,000 (γ 10 drifts there), which also passes at
            # 500; ε 3e-4 diverges at step 500
            signals={"llc": {"epsilon": 1e-4, "gamma": 100.0}},
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
                steps=10_000, eval_every=200, checkpoint_every=2_000, **NOTEBOOK_TRAIN
            ),
            description="Elhage et al. 2022 phase diagram: n=2, m=1, 12 relative "
            "importances 0.1..10 x 12 densities 1..0.01, best of 6 inits, 10k steps "
            "(~15 min on 1 busy core)",
            # phasewatch calibrate (default grid) at step 1,000 of a run of this preset (seed
            # 0, --steps 1000; 2026-12-04): the rule recommends ε 3e-4, γ 10 (λ̂ 292); at
            # step 500 every chain fell below the initial loss
            signals={"llc": {"epsilon": 3e-4, "gamma": 10.0}},
        ),
    }

    def build(self, cfg: SuperpositionConfig, train: TrainConfig) -> SuperpositionTask:
        """One seed's task: every instance of ``cfg``'s grid in one :class:`~.model.ToyModel`."""
        return SuperpositionTask.from_config(cfg, train)

    def checkpoint_measures(
        self,
        cfg: SuperpositionConfig,
        train: TrainConfig,
        checkpoints: Iterator[tuple[int, dict[str, Tensor]]],
        final: dict[str, Tensor],
    ) -> Findings:
        """Geometry of the final weights (the checkpoints are not read): see
        :func:`~phasewatch.phenomena.superposition.findings.findings`."""
        return findings(cfg, train, final)


register(Superposition())
