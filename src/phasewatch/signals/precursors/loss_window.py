"""The trailing window of per-sample probe losses that the ``dmd`` and
``loss_covariance`` trajectory signals read.

Both signals see the probe batch's per-sample losses (nats) at the last ``W`` measured
checkpoints <= t, as a dense ``(W, n)`` matrix: row k is checkpoint ``steps[k]``
(ascending), column i is probe sample i. The ``per_sample_loss`` table is written by the
``samples`` signal (one row per step and sample).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from jaxtyping import Float

from phasewatch.signals.trajectory import History, NotApplicable

TABLE = "per_sample_loss"


@dataclass(frozen=True)
class LossWindow:
    """Per-sample losses at the last ``W`` checkpoints <= t.

    Attributes:
        steps: (W,) checkpoint steps, ascending.
        losses: (W, n) per-sample loss in nats; row k at ``steps[k]``, column i sample i.
        samples: (n,) the probe-sample ids of the columns.
        dropped: samples left out because their loss is missing or not finite at some
            checkpoint of the window.
    """

    steps: np.ndarray
    losses: Float[np.ndarray, "W n"]
    samples: np.ndarray
    dropped: int = 0

    def warnings(self, name: str) -> list[str]:
        """Human-readable notes on the window (dropped samples, uneven spacing)."""
        out = []
        if self.dropped:
            out.append(
                f"{name}: {self.dropped} probe sample(s) missing or not finite at some "
                f"checkpoint of the window {int(self.steps[0])}..{int(self.steps[-1])} were "
                "left out"
            )
        gaps = np.diff(self.steps)
        if len(gaps) and gaps.min() != gaps.max():
            out.append(
                f"{name}: checkpoints in the window are unevenly spaced (gaps "
                f"{int(gaps.min())}..{int(gaps.max())} steps); values treat them as equal steps"
            )
        return out


def last_steps(steps: np.ndarray, t: int, window: int) -> tuple[np.ndarray, slice | np.ndarray]:
    """The last ``window`` distinct values <= ``t`` of ``steps`` (fewer if there are
    fewer), ascending, and the rows of ``steps`` that hold them (a slice or a mask).

    O(window · log N) when ``steps`` is sorted (a table appended checkpoint by
    checkpoint), O(N) hashing otherwise; never a full sort of the N rows.
    """
    if len(steps) and np.all(steps[1:] >= steps[:-1]):
        hi = end = int(np.searchsorted(steps, t, side="right"))
        found = []
        while end > 0 and len(found) < window:
            found.append(steps[end - 1])
            end = int(np.searchsorted(steps, steps[end - 1], side="left"))
        return np.asarray(found[::-1]), slice(end, hi)
    kept = np.sort(pd.unique(steps[steps <= t]))[-window:]
    rows = (steps >= kept[0]) & (steps <= t) if len(kept) else np.zeros(len(steps), bool)
    return kept, rows


def loss_window(history: History, window: int, *, name: str) -> LossWindow:
    """The per-sample losses at the last ``window`` checkpoints <= ``history.step``.

    Rows after ``history.step`` are ignored even if the table holds them, so the result
    is causal whatever history it is given. Samples whose loss is missing or not finite
    at any checkpoint of the window are dropped (counted in ``dropped``); a repeated
    (step, sample) row keeps the last value.

    Args:
        history: what the run logged up to t; reads its ``per_sample_loss`` table
            (columns ``step``, ``sample``, ``loss``).
        window: number W of most recent checkpoints to keep (>= 1).
        name: the calling signal's name, used in messages.

    Raises:
        NotApplicable: if the table is missing, holds fewer than ``window`` checkpoints
            <= t, or no sample is present at every checkpoint of the window; the message
            names what the signal needs.
    """
    df = history.table(TABLE)
    steps, rows = last_steps(df["step"].to_numpy(), history.step, window)
    if len(steps) < window:
        raise NotApplicable(
            f"{name} needs per-sample losses ({TABLE!r}, from the 'samples' signal) at "
            f">= {window} checkpoints (its window), has {len(steps)} by step {history.step}"
        )
    wide = (
        (df.iloc[rows] if isinstance(rows, slice) else df[rows])
        .drop_duplicates(["step", "sample"], keep="last")
        .pivot(index="step", columns="sample", values="loss")
        .reindex(steps)
    )
    finite = np.isfinite(wide.to_numpy(dtype=np.float64))  # NaN for a missing row
    complete = wide.columns[finite.all(axis=0)]
    if len(complete) == 0:
        raise NotApplicable(
            f"{name} needs probe samples with finite losses at every one of the last "
            f"{window} checkpoints up to step {history.step}; none has"
        )
    losses = wide[complete].to_numpy(dtype=np.float64)
    return LossWindow(steps, losses, np.asarray(complete), len(wide.columns) - len(complete))
