"""Grokking on modular arithmetic (Power et al. 2022; Nanda et al. 2023).

Inputs are the three tokens ``a b =`` (vocabulary p + 1, ``=`` is token p); the model
reads the logits (p classes) at the last position. A random ``train_frac`` of the pairs
is the training set, trained full-batch; the rest is the test set.

Presets:
    nanda2023: the exact setup of Nanda et al. 2023 (arXiv 2301.05217, §3): p = 113,
        a + b, 30% train, 1 layer, d_model 128, 4 heads × 32, d_mlp 512, AdamW lr 1e-3,
        weight decay 1.0, betas (0.9, 0.98), 10 warm-up steps, loss in float64.
    quick: Nanda's model and optimiser on p = 59 with 30% train and lr 3e-3, so that
        delayed generalisation shows in about a minute on 2 CPU cores: memorisation by
        step ~50, generalisation at ~1.5k-3.5k steps (seeds 0-2 measured here).
    small: the lead-time benchmark's preset (p = 47, d_model 64, lr 1e-2, 4k steps).
    forecast, forecast-subcritical, forecast-x2xy, forecast-x3xy, forecast-wd0: the
        forecasting benchmark's family (:func:`forecast_presets`).

Code: the config and the operations in :mod:`.config`, the pairs and their split in
:mod:`.data`, the fast read-out forward pass in :mod:`.model`, one seed's task in
:mod:`.task`, the Fourier progress measures in :mod:`.fourier` and the whole-run findings
in :mod:`.findings`; this module holds the presets and the registration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from torch import Tensor

from phasewatch.config import OnsetRule, TrainConfig
from phasewatch.phenomena.base import Findings, Preset, register
from phasewatch.phenomena.grokking.config import GrokkingConfig
from phasewatch.phenomena.grokking.findings import HINDSIGHT_KEYS, findings
from phasewatch.phenomena.grokking.task import GrokkingTask

__all__ = ["Grokking", "GrokkingConfig"]


_SMALL_TASK = GrokkingConfig(p=47, train_frac=0.4, d_model=64, d_head=16, d_mlp=256)
# phasewatch calibrate on a `small` run, default grid, seed 0: the rule recommends ε 1e-3,
# γ 100 at steps 500 and 2,000 (2026-12-04; 3e-4 with γ 100 also passes at both); the
# forecasting presets share the model and take the same setting
_SMALL_LLC = {"llc": {"epsilon": 1e-3, "gamma": 100.0}}
_SMALL_TRAIN = TrainConfig(
    steps=4_000,
    lr=1e-2,
    weight_decay=1.0,
    beta1=0.9,
    beta2=0.98,
    warmup_steps=10,
    eval_every=10,
    checkpoint_every=100,
)


def forecast_presets() -> dict[str, Preset]:
    """The grokking family of the forecasting benchmark (``docs/forecast/protocol.md``):
    ``forecast`` is the ``small`` model and optimiser on a 2,000-step budget with
    checkpoints every 20 steps (exploratory seeds 1000-1005: memorisation at step 40-50,
    test accuracy >= 0.99 at steps 450-1,050); its matched null runs differ in one thing
    each: below the critical training fraction (``forecast-subcritical``, 25%), an
    operation that does not generalise within the budget (``forecast-x2xy``: a²+ab+b²,
    ``forecast-x3xy``: a³+ab; Xu 2026), or no weight decay (``forecast-wd0``)."""
    train = dataclasses.replace(_SMALL_TRAIN, steps=2_000, checkpoint_every=20)
    kinds = {
        "forecast": (_SMALL_TASK, train, "transition runs"),
        "forecast-subcritical": (
            dataclasses.replace(_SMALL_TASK, train_frac=0.25),
            train,
            "null: 25% train, below the critical training fraction",
        ),
        "forecast-x2xy": (
            dataclasses.replace(_SMALL_TASK, op="x2+xy+y2"),
            train,
            "null: a^2+ab+b^2 mod p, which does not generalise within the budget",
        ),
        "forecast-x3xy": (
            dataclasses.replace(_SMALL_TASK, op="x3+xy"),
            train,
            "null: a^3+ab mod p, which does not generalise within the budget",
        ),
        "forecast-wd0": (
            _SMALL_TASK,
            dataclasses.replace(train, weight_decay=0.0),
            "null: no weight decay",
        ),
    }
    return {
        name: Preset(task=task, train=tr, description=f"forecasting benchmark, {what}: "
                     "the small model, AdamW lr 1e-2, 2k steps, checkpoints every 20",
                     signals=_SMALL_LLC)
        for name, (task, tr, what) in kinds.items()
    }  # fmt: skip


class Grokking:
    """The grokking phenomenon (registered as ``grokking``)."""

    name = "grokking"
    config_cls = GrokkingConfig
    batch_fields = ("train_frac",)  # batched seeds: per-member training-pair masks
    default_preset = "quick"
    hindsight_keys = HINDSIGHT_KEYS  # final-model key frequencies: not for forecasting
    onsets = (
        OnsetRule("memorisation", "train/acc", "cross", ">=", 0.99),
        OnsetRule("generalisation_50", "test/acc", "cross", ">=", 0.5),
        OnsetRule("generalisation", "test/acc", "cross", ">=", 0.99),
        OnsetRule("test_loss_peak", "test/loss", "peak"),
    )
    presets = {
        "nanda2023": Preset(
            task=GrokkingConfig(),
            train=TrainConfig(
                steps=40_000,
                lr=1e-3,
                weight_decay=1.0,
                beta1=0.9,
                beta2=0.98,
                warmup_steps=10,
                eval_every=100,
                checkpoint_every=500,
            ),
            description="Nanda et al. 2023: p=113 a+b, 30% train, 1L d_model 128, "
            "AdamW lr 1e-3 wd 1.0, 40k full-batch steps",
            # phasewatch calibrate at step 1,000 of this preset (seed 0, 2026-12-04) on
            # ε {3e-5, 1e-4} x γ {100, 1000}: the only point passing the rule (the 3e-4/100
            # default diverged in every chain at steps 1,000-11,000, issue 20)
            signals={"llc": {"epsilon": 1e-4, "gamma": 1000.0}},
        ),
        "quick": Preset(
            task=GrokkingConfig(p=59, train_frac=0.3),
            train=TrainConfig(
                steps=5_000,
                lr=3e-3,
                weight_decay=1.0,
                beta1=0.9,
                beta2=0.98,
                warmup_steps=10,
                eval_every=50,
                checkpoint_every=250,
            ),
            description="p=59 a+b, 30% train, Nanda's 1L model, AdamW lr 3e-3 wd 1.0, "
            "5k full-batch steps (~1-2 min on 2 cores)",
            # calibrate's rule (signals/calibrate.py), seed 0, steps 250 and 5,000 (2026-12-01)
            signals={"llc": {"epsilon": 3e-4, "gamma": 100.0}},
        ),
        "small": Preset(
            task=_SMALL_TASK,
            train=_SMALL_TRAIN,
            description="the lead-time benchmark's preset: p=47 a+b, 40% train, 1L d_model 64 "
            "(4 heads x 16, d_mlp 256), AdamW lr 1e-2 wd 1.0, 4k steps, metrics every 10 "
            "steps (~1 min on one core); memorises by step 50, generalises near step 1,100",
            signals=_SMALL_LLC,
        ),
        **forecast_presets(),
    }

    def build(self, cfg: GrokkingConfig, train: TrainConfig) -> GrokkingTask:
        """One seed's task (model, data split, per-eval measures)."""
        return GrokkingTask(cfg, train)

    def checkpoint_measures(
        self,
        cfg: GrokkingConfig,
        train: TrainConfig,
        checkpoints: Iterator[tuple[int, dict[str, Tensor]]],
        final: dict[str, Tensor],
    ) -> Findings:
        """Key frequencies of the final model; restricted and excluded loss per checkpoint:
        see :func:`~phasewatch.phenomena.grokking.findings.findings`."""
        return findings(cfg, train, checkpoints, final)


register(Grokking())
