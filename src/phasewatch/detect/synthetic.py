"""Run directories with a planted transition, for checking detectors on a known answer.

Transition runs: ``signal/x`` is an AR(1) process whose coefficient ramps from 0 to 0.98
at the onset (critical slowing down, Scheffer et al. 2009) and ``test/acc`` jumps
(logistic, width 20 steps) at the onset. Null runs: a constant coefficient of 0.5 and no
jump. Every run logs every 10 steps for 4,000 planned steps and memorises (``train/acc``
= 1) at step 40, like the grokking ``small`` preset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from phasewatch.store import RunDir, create_run

STEPS = np.arange(0, 4001, 10)


def planted_ar1(phi: np.ndarray, seed: int, noise: float = 0.1) -> np.ndarray:
    """x_t = φ_t·x_{t−1} + ε_t, ε ~ N(0, noise²), x_0 = 0."""
    rng = np.random.default_rng(seed)
    x = np.zeros(len(phi))
    for t in range(1, len(phi)):
        x[t] = phi[t] * x[t - 1] + rng.normal(0, noise)
    return x


def write_run(
    root: str | Path, name: str, seed: int, onset: int | None, status: str = "done"
) -> RunDir:
    """One synthetic run under ``root/name``: a transition at ``onset`` (steps) or none."""
    phi = np.full(len(STEPS), 0.5) if onset is None else np.clip(STEPS / onset * 0.98, 0, 0.98)
    x = planted_ar1(phi, seed)
    jump = 0.98 / (1 + np.exp(-(STEPS - onset) / 20.0)) if onset else 0.0 * STEPS
    cfg = {
        "phenomenon": "grokking",
        "preset": "small",
        "task": {"p": 47, "train_frac": 0.4 if onset else 0.3},
        "train": {"seed": seed, "steps": 4000, "weight_decay": 1.0},
    }
    rd = create_run(root, name, cfg, {})
    series = {
        "signal/x": x,
        "test/acc": 0.02 + jump,
        "train/acc": np.where(STEPS >= 40, 1.0, 0.1),
    }
    rd.write_metrics(
        pd.concat(
            [pd.DataFrame({"step": STEPS, "key": k, "value": v}) for k, v in series.items()],
            ignore_index=True,
        )
    )
    keys = ([3, 7] if seed % 2 else [5]) if onset else []
    rd.write_events({"onsets": {"memorisation": {"step": 40}}, "key_frequencies": keys})
    rd.set_status(status, 4000)
    return rd


def write_sweep(root: str | Path, n_transition: int, n_null: int, *, seed: int = 0) -> Path:
    """``n_transition`` runs with onsets drawn from 2,600–3,400 and ``n_null`` null runs."""
    onsets = np.random.default_rng(seed).integers(2600, 3400, n_transition)
    for i, onset in enumerate(onsets):
        write_run(root, f"t{i}", i, int(onset))
    for i in range(n_null):
        write_run(root, f"n{i}", 100 + i, None)
    return Path(root)
