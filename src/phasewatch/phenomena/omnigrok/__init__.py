"""Grokking beyond algorithms: Omnigrok (Liu, Michaud & Tegmark, ICLR 2023, arXiv
2210.01117).

An MLP whose initialisation is scaled up by α memorises a small training set at once,
then generalises late while weight decay shrinks its weights towards the "Goldilocks
zone" of the weight norm; without weight decay the norm stays large and it does not
generalise within the budget (§3, MNIST with 1,000 training images). Here the data is
scikit-learn's bundled 8×8 digits (MNIST cannot be downloaded offline).

Presets:
    digits: 200 training digits, MLP 64-100-100-10, α = 8, MSE on one-hot targets,
        AdamW lr 1e-3, weight decay 0.3, 6k full-batch steps (seed 0 measured here:
        train/acc 0.99 at ~1.2k steps, test/acc 0.5 at ~2.3k and 0.9 at ~4.2k, while
        the weight norm falls from 67 to 20; ~15 s on one core).
    digits-null: the same with weight decay 0 (test/acc stays near 0.13-0.2).

Code: the config in :mod:`.config`, the MLP and data in :mod:`.task`; this module holds
the presets and the registration.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor

from phasewatch.config import OnsetRule, TrainConfig
from phasewatch.phenomena.base import Findings, Preset, register
from phasewatch.phenomena.omnigrok.config import OmnigrokConfig
from phasewatch.phenomena.omnigrok.task import OmnigrokTask

__all__ = ["Omnigrok", "OmnigrokConfig"]


def _train(weight_decay: float) -> TrainConfig:
    return TrainConfig(
        steps=6_000,
        lr=1e-3,
        weight_decay=weight_decay,
        beta1=0.9,
        beta2=0.999,
        warmup_steps=0,
        eval_every=50,
        checkpoint_every=250,
    )


class Omnigrok:
    """The Omnigrok phenomenon (registered as ``omnigrok``)."""

    name = "omnigrok"
    config_cls = OmnigrokConfig
    default_preset = "digits"
    onsets = (
        OnsetRule("memorisation", "train/acc", "cross", ">=", 0.99),
        OnsetRule("generalisation_50", "test/acc", "cross", ">=", 0.5),
        OnsetRule("generalisation", "test/acc", "cross", ">=", 0.8),
    )
    presets = {
        "digits": Preset(
            OmnigrokConfig(),
            _train(0.3),
            "200 digits, MLP 64-100-100-10, init x8, MSE, AdamW lr 1e-3 wd 0.3, 6k steps",
            # phasewatch calibrate (default grid) on a run of this preset (seed 0) at steps
            # 3,000 and 6,000 (2026-12-04): the rule recommends ε 1e-3, γ 100 at 6,000
            # (λ̂ 30) and γ 10 at 3,000, where γ 100 also passes (γ 10 drifts at 6,000)
            signals={"llc": {"epsilon": 1e-3, "gamma": 100.0}},
        ),
        "digits-null": Preset(
            OmnigrokConfig(),
            _train(0.0),
            "the digits preset without weight decay (null run)",
            # phasewatch calibrate (default grid) on a run of this preset (seed 0) at steps
            # 3,000 and 6,000 (2026-12-04): the rule recommends ε 3e-4, γ 10 at both
            # (ε 1e-3 diverges; λ̂ 220 and 192, below ε 1e-4's ~500: near the edge)
            signals={"llc": {"epsilon": 3e-4, "gamma": 10.0}},
        ),
    }

    def build(self, cfg: OmnigrokConfig, train: TrainConfig) -> OmnigrokTask:
        """One seed's MLP and data split."""
        return OmnigrokTask(cfg, train)

    def checkpoint_measures(
        self,
        cfg: OmnigrokConfig,
        train: TrainConfig,
        checkpoints: Iterator[tuple[int, dict[str, Tensor]]],
        final: dict[str, Tensor],
    ) -> Findings:
        """No whole-run measures: every Omnigrok measure is logged while training."""
        return Findings()


register(Omnigrok())
