"""The capacity study: how many features trained toy models hold in m dimensions, beside
the worst-case interference bounds (Elhage et al. 2022, "Toy Models of Superposition";
bounds in :mod:`.bounds`). Trains without a run store (``phasewatch superposition
capacity``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch

from phasewatch.config import TrainConfig, require
from phasewatch.phenomena.superposition import geometry as geo
from phasewatch.phenomena.superposition.bounds import capacity_row
from phasewatch.phenomena.superposition.config import NOTEBOOK_TRAIN, SuperpositionConfig
from phasewatch.phenomena.superposition.task import SuperpositionTask, fit
from phasewatch.training.progress import progress_bar


def _check(m: int, ns: Sequence[int], sparsities: Sequence[float]) -> None:
    """Raise ConfigError on m < 1, an empty list, n < 1 or S outside [0, 1)."""
    require(isinstance(m, int) and m >= 1, "m", "an integer >= 1", m)
    require(len(ns) > 0 and all(int(n) == n and n >= 1 for n in ns), "n", "integers >= 1", ns)
    require(
        len(sparsities) > 0 and all(0 <= s < 1 for s in sparsities),
        "sparsity",
        "floats in [0, 1) (density 1 - S in (0, 1])",
        sparsities,
    )


def _rows_for_n(
    m: int,
    n: int,
    sparsities: Sequence[float],
    train: TrainConfig,
    *,
    batch: int,
    norm_threshold: float,
    on_step: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Train one model with one instance per sparsity (importance 1) and return one
    capacity row per sparsity, plus ``density``, ``loss`` and ``seconds`` (training time)."""
    dens = torch.tensor([1 - s for s in sparsities], dtype=torch.float64)
    imp = torch.ones(len(dens), n, dtype=torch.float64)
    task = SuperpositionTask(
        dens, imp, m, seed=train.seed, batch=batch, norm_threshold=norm_threshold
    )
    t0 = time.perf_counter()
    fit(task, train, on_step)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        losses = task.instance_losses(task.eval_batch())
    W = task.weights()
    rows = []
    for k, s in enumerate(sparsities):
        rep = geo.represented(W[k], norm_threshold)
        stats = geo.interference(W[k], rep)
        row = capacity_row(m, n, float(s), int(rep.sum()), stats)
        row.update(density=1 - float(s), loss=float(losses[k]), seconds=seconds)
        rows.append(row)
    return rows


def capacity(
    m: int,
    ns: Sequence[int],
    sparsities: Sequence[float],
    *,
    steps: int = 10_000,
    seed: int = 0,
    batch: int = 1024,
    norm_threshold: float = 0.5,
    progress: bool = False,
) -> pd.DataFrame:
    """How many features a trained toy model holds, against the worst-case bounds.

    For each n, one :class:`~.task.SuperpositionTask` with one instance per sparsity
    (importance 1, the notebook's optimiser) is trained for ``steps`` steps; then, per
    (n, S): (a) represented features (‖W_i‖ > ``norm_threshold``), (b) their measured max,
    mean and max positive |cos|, (c) the Johnson–Lindenstrauss ε, the random-vector
    union-bound ε and the Welch bound for the same m and n (:mod:`.bounds`), and a
    sentence comparing the worst-case bound with the measured typical interference.

    Args:
        m: hidden dimensions, >= 1.
        ns: feature counts, each >= 1.
        sparsities: S values, each in [0, 1) (density 1 − S in (0, 1]).
        steps, seed, batch: training length (steps), seed and batch size (examples).
        norm_threshold: ‖W_i‖ above which a feature counts as represented.
        progress: show a progress bar over all models' training steps.

    Returns:
        One row per (n, S), ordered by n then S; columns as
        :func:`~.bounds.capacity_row` plus ``density``, ``loss`` and ``seconds``
        (training time of that n).

    Raises:
        ConfigError: on m < 1, an empty list, n < 1, S outside [0, 1), steps < 1.
    """
    _check(m, ns, sparsities)
    train = TrainConfig(seed=seed, steps=steps, eval_every=max(steps, 1), **NOTEBOOK_TRAIN)
    SuperpositionConfig(batch=batch, norm_threshold=norm_threshold)  # validates both
    rows = []
    with progress_bar(progress) as bar:
        job = bar.add_task("capacity", total=len(ns) * steps)
        for n in ns:
            bar.update(job, info=f"n={n}")
            rows += _rows_for_n(
                m, int(n), sparsities, train, batch=batch, norm_threshold=norm_threshold,
                on_step=lambda: bar.advance(job),
            )  # fmt: skip
    return pd.DataFrame(rows)
