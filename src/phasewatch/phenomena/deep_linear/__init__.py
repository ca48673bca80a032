"""Saddle-to-saddle learning in a deep linear network (Saxe, McClelland & Ganguli 2014,
arXiv 1312.6120).

From a small initialisation, full-batch gradient descent on whitened inputs learns the
target's singular modes one at a time, largest first, each after a plateau near a saddle
whose length grows as the mode's singular value shrinks (depth 2: half-learning time
``t_i ≈ (τ / 2 s_i) ln(s_i / a_i(0))`` with ``τ = 1/lr`` steps, §2 eq. 7). Each escape is a
smooth, *second-order*-like transition: the positive control of the forecasting benchmark,
where critical slowing down should warn (Hennick & Corlouer 2026 discuss why it need not
on first-order transitions such as grokking).

Presets:
    saxe: d = hidden = 10, depth 2, modes (4, 2, 1), init 0.01, plain SGD lr 0.01 (τ = 100
        steps): modes escape near steps ~100, ~250 and ~400 (seed 0, measured here).
    saxe-null: the same model, optimiser and budget on a target without its last mode.

Code: the config in :mod:`.config`, the network, whitened data and mode strengths in
:mod:`.task`; this module holds the presets and the registration.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from torch import Tensor

from phasewatch.config import OnsetRule, TrainConfig
from phasewatch.phenomena.base import Findings, Preset, register
from phasewatch.phenomena.deep_linear.config import DeepLinearConfig
from phasewatch.phenomena.deep_linear.task import DeepLinearTask

__all__ = ["DeepLinear", "DeepLinearConfig"]

_TRAIN = TrainConfig(
    steps=1_000,
    optimizer="sgd",
    lr=0.01,
    weight_decay=0.0,
    warmup_steps=0,
    eval_every=5,
    checkpoint_every=25,
)


def half_times(cfg: DeepLinearConfig, lr: float, a0: Tensor) -> list[float | None]:
    """Saxe et al.'s depth-2 half-learning times (steps) of each target mode,
    ``t_i = (τ / 2 s_i) · ln(s_i / a_i(0) − 1)`` with ``τ = 1/lr`` and ``a_i(0)`` the
    initial strength (eq. 7 of §2, balanced-initialisation approximation); None where
    ``a_i(0) <= 0`` (the formula needs a positive initial strength) or for a dropped mode.

    Args:
        cfg: the config (its ``modes``).
        lr: the SGD learning rate (τ = 1/lr steps).
        a0: ``(k,)`` initial strengths ``u_iᵀ W(0) v_i`` (not fractions).
    """
    out: list[float | None] = []
    for i, s in enumerate(cfg.target_modes):
        a = float(a0[i])
        out.append(None if a <= 0 else (1 / lr) / (2 * s) * math.log(s / a - 1))
    return out + [None] * (len(cfg.modes) - len(cfg.target_modes))


class DeepLinear:
    """The deep linear network phenomenon (registered as ``deep-linear``)."""

    name = "deep-linear"
    config_cls = DeepLinearConfig
    default_preset = "saxe"
    onsets = (
        OnsetRule("mode1", "modes/m1", "cross", ">=", 0.5),
        OnsetRule("escape", "modes/last", "cross", ">=", 0.5),
    )
    presets = {
        "saxe": Preset(
            DeepLinearConfig(),
            _TRAIN,
            "d=10, depth 2, modes (4, 2, 1), init 0.01, SGD lr 0.01, 1k full-batch steps",
            # phasewatch calibrate (default grid) on a run of this preset (seed 0) at steps
            # 500 and 1,000 (2026-12-04): the rule recommends ε 1e-3, γ 10 at both (the
            # grid's largest ε and smallest γ; λ̂ 32 and 30)
            signals={"llc": {"epsilon": 1e-3, "gamma": 10.0}},
        ),
        "saxe-null": Preset(
            DeepLinearConfig(drop_last=True),
            _TRAIN,
            "the saxe preset on a target without its last mode (null run)",
            # phasewatch calibrate (default grid) on a run of this preset (seed 0) at steps
            # 500 and 1,000 (2026-12-04): the rule recommends ε 1e-3, γ 10 at both (the
            # grid's largest ε and smallest γ; λ̂ 29 and 27)
            signals={"llc": {"epsilon": 1e-3, "gamma": 10.0}},
        ),
    }

    def build(self, cfg: DeepLinearConfig, train: TrainConfig) -> DeepLinearTask:
        """One seed's network and data."""
        return DeepLinearTask(cfg, train)

    def checkpoint_measures(
        self,
        cfg: DeepLinearConfig,
        train: TrainConfig,
        checkpoints: Iterator[tuple[int, dict[str, Tensor]]],
        final: dict[str, Tensor],
    ) -> Findings:
        """Saxe et al.'s predicted half-learning times from the first checkpoint's
        strengths (events ``theory``), for comparison with the measured onsets."""
        task = DeepLinearTask(cfg, train)
        first = next(iter(checkpoints), None)
        if first is None:
            return Findings()
        task.model.load_state_dict(first[1])
        a0 = task.strengths() * task.s
        predicted = half_times(cfg, train.lr, a0) if train.optimizer == "sgd" else None
        theory = {
            "modes": list(cfg.modes),
            "target_modes": list(cfg.target_modes),
            "initial_strength": [float(a) for a in a0],
            "half_time_steps": predicted,
            "rule": "depth-2 gradient flow, t_i = (1/(2 lr s_i)) ln(s_i/a_i(0) - 1)",
        }
        return Findings(events={"theory": theory})


register(DeepLinear())
