"""The probe batch's per-sample losses at a checkpoint: a table and its quantiles.

The raw material of the distributional precursors: Hankel-DMD of the loss distribution
(Wang, Ying & Kanamori 2026, arXiv 2605.08237, method section: per-sample
log-probabilities as empirical distributions) and the per-sample loss covariance over a
window of checkpoints (Hennick & Corlouer 2026, arXiv 2603.29805). Both are trajectory
signals with ``needs=("samples",)``; they read ``history.table("per_sample_loss")``.

At a checkpoint with per-sample losses :math:`\\ell_1,\\dots,\\ell_n` (nats) of the probe
batch, the signal stores

* the table ``per_sample_loss`` with columns ``step`` (int), ``sample`` (int, the index
  i in the probe batch) and ``loss`` (float64, nats; plus the runner's ``settings``
  column) for a fixed subset :math:`S` of at most ``max_samples`` samples, so the table
  grows by at most ``max_samples`` rows per checkpoint. :math:`S` is drawn once from
  ``seed`` and n alone (not from the step), so it is the same sample ids at every
  checkpoint and a window of checkpoints has complete columns;
* the scalars ``samples/loss_q10``, ``samples/loss_q50``, ``samples/loss_q90``: the
  empirical quantiles :math:`Q(q)` of all n losses (linear interpolation between order
  statistics), and ``samples/loss_std``: :math:`\\sqrt{\\tfrac1{n-1}\\sum_i(\\ell_i-\\bar
  \\ell)^2}` (0 for n = 1); all in nats.

Cost: one forward pass on the probe batch (``probe.per_sample_loss()``), no gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from phasewatch.config import require
from phasewatch.signals.base import Measurement, Probe, signal
from phasewatch.signals.trajectory import NotApplicable

TABLE = "per_sample_loss"
QUANTILES = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class SamplesSettings:
    """Settings of the ``samples`` signal.

    Attributes:
        max_samples: at most this many samples are stored per checkpoint (a fixed subset;
            512 keeps a 1,000-checkpoint run's table near 0.5 M rows, about 6 MB).
        seed: seeds the choice of the stored subset (not the step: the subset is fixed).

    Raises:
        ConfigError: if ``max_samples`` < 1.
    """

    max_samples: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        ok = isinstance(self.max_samples, int) and self.max_samples >= 1
        require(ok, "max_samples", "an integer >= 1", self.max_samples)


def stored_subset(n: int, max_samples: int, seed: int) -> np.ndarray:
    """The sample ids kept in the table: all of ``range(n)`` if n <= ``max_samples``,
    else ``max_samples`` ids drawn without replacement by a generator seeded with ``seed``
    (the same for every step), sorted.

    Returns:
        (m,) int64 ids, m = min(n, max_samples).
    """
    if n <= max_samples:
        return np.arange(n, dtype=np.int64)
    gen = torch.Generator().manual_seed(seed)
    return np.sort(torch.randperm(n, generator=gen)[:max_samples].numpy()).astype(np.int64)


@signal("samples", settings=SamplesSettings)
def samples(probe: Probe, settings: SamplesSettings, *, generator: torch.Generator) -> Measurement:
    """Per-sample losses of the probe batch (module docstring).

    Args:
        probe: the checkpoint; needs ``probe.per_sample_loss`` (``() -> Tensor (n,)``).
        settings: ``max_samples`` and the subset's ``seed``.
        generator: unused (the stored subset depends on ``seed`` only, not on the step).

    Returns:
        ``samples/loss_q10``, ``samples/loss_q50``, ``samples/loss_q90``,
        ``samples/loss_std`` (nats) and the table ``per_sample_loss`` (step, sample, loss); a
        warning if some losses are not finite (the scalars then use the finite ones).

    Raises:
        NotApplicable: if the probe has no per-sample losses, or none is finite.
    """
    if probe.per_sample_loss is None:
        raise NotApplicable(
            "needs per-sample losses of the probe batch (a task with per_sample_loss(step), "
            "or a Watcher loss_fn returning (n,) losses)"
        )
    with torch.no_grad():
        loss = probe.per_sample_loss().detach().to("cpu", torch.float64).reshape(-1).numpy()
    finite = loss[np.isfinite(loss)]
    if finite.size == 0:
        raise NotApplicable(f"needs finite per-sample losses; all {loss.size} are not")
    values = {f"samples/loss_q{round(100 * q)}": float(np.quantile(finite, q)) for q in QUANTILES}
    values["samples/loss_std"] = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
    ids = stored_subset(loss.size, settings.max_samples, settings.seed)
    table = pd.DataFrame({"step": probe.step, "sample": ids, "loss": loss[ids]})
    warnings = []
    if finite.size < loss.size:
        warnings.append(
            f"samples: {loss.size - finite.size} of {loss.size} per-sample losses are not "
            "finite; the quantiles use the finite ones"
        )
    return Measurement(values, {TABLE: table}, warnings)
