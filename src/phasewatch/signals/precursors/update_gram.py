"""``update_gram``: the spectral gap of the Gram matrix of updates between checkpoints.

Source: Xu 2026, "The Spectral Edge Thesis" (arXiv 2603.28964; abstract and §1: the
rolling-window Gram matrix of parameter updates, W ≈ 10, gap position
:math:`k^*=\\arg\\max_j\\sigma_j/\\sigma_{j+1}`). The trainer and the Watcher log the same
statistic per optimiser step as ``updates/gram_gap`` and ``updates/gram_top_frac``
(:mod:`phasewatch.training.updates`, where the definition, the choice of k and the
zero-division rule are documented); this trajectory signal measures it on runs already
trained, from their checkpoints.

At step t, with the last W + 1 checkpoints :math:`c_0<\\dots<c_W\\le t` (causal: only
checkpoints <= t), the updates are
:math:`u_i=\\theta_{c_{i+1}}-\\theta_{c_i}\\in\\mathbb R^P` (every floating-point tensor of
the checkpoint flattened, float32; constant buffers contribute nothing), :math:`G=UU^\\top`
(W × W, float64), :math:`\\sigma_j=\\sqrt{\\lambda_j(G)}` and

.. math::
    \\texttt{update\\_gram/gram\\_gap}=\\min\\Big(\\max_{j\\le k_{\\max}}
        \\frac{\\sigma_j}{\\sigma_{j+1}},\\ 10^6\\Big),\\qquad
    \\texttt{update\\_gram/gram\\_top\\_frac}=\\frac{\\sigma_1}{\\sum_j\\sigma_j}

(dimensionless; :math:`\\sigma_{j+1}\\le 10^{-6}\\sigma_1` counts as zero, so a window of
rank <= k_max reports the cap 1e6).

**A coarser cadence.** Each update here is the sum of the ``checkpoint_every`` optimiser
updates between two checkpoints, so the window spans W checkpoint intervals rather than
W steps: values are not comparable to the trainer's per-step ``updates/…`` keys (summing
steps averages out step-to-step noise, which raises the gap). Checkpoints are treated as
equally spaced; a warning says when they are not.

Cost per measured point: W + 1 checkpoint reads, then W rows of G (W dot products of
length P each, float64) and a W × W eigenproblem — measured 12 ms CPU on one core for the
``quick`` grokking model (P = 212,864) besides the reads, about half a training step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from phasewatch.config import require
from phasewatch.signals.base import Measurement
from phasewatch.signals.trajectory import History, NotApplicable, trajectory
from phasewatch.training.updates import KMAX, WINDOW, UpdateTracker

NAME = "update_gram"


@dataclass(frozen=True)
class UpdateGramSettings:
    """Settings of ``update_gram``.

    Attributes:
        window: W, the checkpoint-to-checkpoint updates in the window (>= 2; the paper's
            W ≈ 10).
        kmax: the gap position k* is searched among j = 1..kmax (>= 1; the paper finds
            k* <= 3).
    """

    window: int = WINDOW
    kmax: int = KMAX

    def __post_init__(self) -> None:
        require(self.window >= 2, "window", "an integer >= 2", self.window)
        require(self.kmax >= 1, "kmax", "an integer >= 1", self.kmax)


def _flat(state: dict[str, torch.Tensor], keys: list[str]) -> torch.Tensor:
    """The tensors ``keys`` of a checkpoint flattened into one float32 vector ``(P,)``."""
    return torch.cat([state[k].reshape(-1).float() for k in keys])


@trajectory(NAME, settings=UpdateGramSettings)
def update_gram(
    history: History, settings: UpdateGramSettings, *, generator: torch.Generator
) -> Measurement:
    """The Gram spectrum of the updates between the last W + 1 checkpoints <= t.

    Args:
        history: the run up to t (its ``checkpoints`` and ``load``).
        settings: window W and kmax.
        generator: unused (the signal is deterministic).

    Returns:
        ``update_gram/gram_gap`` and ``update_gram/gram_top_frac`` (dimensionless), with
        a warning for unevenly spaced checkpoints; no values (and a warning) when no
        parameter moved over the window.

    Raises:
        NotApplicable: with fewer than W + 1 checkpoints <= t, without a checkpoint
            loader, or when the checkpoints of the window hold different tensors.
    """
    w = settings.window
    if len(history.checkpoints) < w + 1:
        raise NotApplicable(
            f"{NAME} needs {w + 1} checkpoints <= step {history.step} (W = {w} updates "
            f"between consecutive checkpoints), has {len(history.checkpoints)}"
        )
    steps = history.checkpoints[-(w + 1) :]
    states = [history.load(s) for s in steps]
    keys = [k for k, v in states[0].items() if v.is_floating_point()]
    try:
        flats = [_flat(st, keys) for st in states]
        tracker = UpdateTracker(len(flats[0]), window=w, kmax=settings.kmax)
        for i, flat in enumerate(flats):
            tracker.observe(i, flat[None])
    except (KeyError, RuntimeError, ValueError) as e:
        raise NotApplicable(
            f"{NAME} needs checkpoints {steps[0]}..{steps[-1]} to hold the same "
            f"floating-point tensors ({type(e).__name__}: {e})"
        ) from e
    values = tracker.metrics(w, prefix=f"{NAME}/")[0]
    warnings = []
    gaps = np.diff(steps)
    if gaps.min() != gaps.max():
        warnings.append(
            f"{NAME}: checkpoints {steps[0]}..{steps[-1]} are unevenly spaced (gaps "
            f"{int(gaps.min())}..{int(gaps.max())} steps); each is one update of the window"
        )
    if not values:
        warnings.append(f"{NAME}: no parameter moved over checkpoints {steps[0]}..{steps[-1]}")
    return Measurement(values, warnings=warnings)
