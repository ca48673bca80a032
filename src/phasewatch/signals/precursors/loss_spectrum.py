"""Spectral signature of the training-loss curve: low-frequency oscillation amplitude.

Source: Notsawo, Zhou, Pezeshki, Rish & Dumas 2023, "Predicting Grokking Long Before it
Happens: A look into the loss landscape of models which grok" (arXiv 2306.13253), the
spectral-signature method (sections 3–4): oscillations in the training loss of the first
epochs predict that the run will grok if trained long enough; they are detected as the
amplitude of the low-frequency components of the Fourier transform of the early loss
curve. The paper publishes no AUC; its result is run-level (grok / no grok).

At step t, from the metric ``key`` (``train/loss``, nats) logged at steps <= t:

1. **Window.** The first ``window`` logged points (``anchor="start"``, the paper's early
   curve; once t is past them the value stops changing: a run-level predictor), or the
   last ``window`` points up to t (``anchor="end"``: a rolling indicator). If fewer than
   ``window`` points are logged, all of them. N points :math:`y_0..y_{N-1}` at steps
   :math:`s_0<\\dots<s_{N-1}`; unevenly spaced steps are linearly interpolated onto N
   evenly spaced ones, spacing :math:`\\Delta=(s_{N-1}-s_0)/(N-1)` steps.
2. **Detrend.** The loss falls by orders of magnitude more than it oscillates, and a
   trend leaks into every low bin, so the least-squares polynomial of degree
   ``detrend_degree`` in the step (rescaled to [-1, 1]) is subtracted:
   :math:`r_n=y_n-p(s_n)`. Degree 3 (default) removes smooth curves whose time scale is
   not much shorter than the window (an exponential decay with time constant 60 points
   in a 128-point window leaves 0.15% of its range, 20 points 2%) and changes the
   amplitude of a bin-aligned sinusoid with >= 3 cycles per window by < 0.5% (slower
   ones partly look like a trend: at 2 cycles up to 15% is absorbed). A drop much
   sharper than the window (e.g. the first few steps of training) is not removed and
   reads as low-frequency amplitude: pick ``window`` so the drop is a small part of it,
   or ``anchor="end"``.
3. **Amplitude spectrum** with a periodic Hann taper
   :math:`w_n=\\tfrac12-\\tfrac12\\cos(2\\pi n/N)` (it stops the window's ends from leaking
   into every bin), normalised by its coherent gain so that
   :math:`y_n=a\\sin(2\\pi k_0 n/N+\\phi)` gives :math:`A_{k_0}=a` exactly (and
   :math:`a/2` in the two neighbouring bins):

   .. math:: A_k=\\frac{2\\,\\bigl|\\sum_{n=0}^{N-1} w_n r_n e^{-2\\pi i kn/N}\\bigr|}
             {\\sum_n w_n},\\qquad k=1,\\dots,\\lfloor N/2\\rfloor.

Keys:
    ``loss_spectrum/low_freq_amp``: :math:`\\max_{1\\le k\\le K}A_k`, K = ``low_bins``
    (oscillations with at most K cycles per window), in the metric's unit (nats).
    ``loss_spectrum/low_freq_period``: :math:`N\\Delta/k^*` of the maximising bin
    :math:`k^*`, in steps.
    ``loss_spectrum/high_low_ratio``: :math:`\\sum_{k>K}A_k^2/\\sum_{1\\le k\\le K}A_k^2`,
    dimensionless (≪ 1: slow oscillations dominate; large: step-to-step noise); left out
    when the low band has no power.
    ``loss_spectrum/points``: N.

Choices the paper leaves open (our defaults, :class:`LossSpectrumSettings`): the first
256 logged points (the paper's "first epochs", as a number of logged points so that runs
logging at different cadences are compared on their own curves); "low frequency" = at
most 8 cycles per window (periods >= N/8 points, 32 for a full window), slower than
step-to-step noise and faster than the trend the cubic removes; the peak amplitude of
that band rather than its sum, so that one oscillation gives its own amplitude whatever
N is.

Causal: the history holds the metric up to t only, and the window, the detrending and the
FFT use only those points. Cost: one FFT of N <= ``window`` points, microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float

from phasewatch.config import require, require_choice
from phasewatch.signals.trajectory import History, NotApplicable, trajectory


@dataclass(frozen=True)
class LossSpectrumSettings:
    """Settings of the ``loss_spectrum`` trajectory signal (module docstring: why).

    Attributes:
        key: the metric whose curve is analysed.
        window: at most this many logged points are used.
        anchor: ``start`` (the first ``window`` points: the paper) or ``end`` (the last
            ``window`` points up to t: a rolling indicator).
        detrend_degree: degree of the polynomial trend removed (0: the mean only).
        low_bins: the low band is bins 1..``low_bins`` (cycles per window).
        min_points: fewer logged points by t is not applicable.

    Raises:
        ConfigError: on an invalid field (``min_points`` must be >= 2·``low_bins`` + 2,
            so the high band is not empty, and > ``detrend_degree`` + 1).
    """

    key: str = "train/loss"
    window: int = 256
    anchor: str = "start"
    detrend_degree: int = 3
    low_bins: int = 8
    min_points: int = 32

    def __post_init__(self) -> None:
        require(isinstance(self.key, str) and self.key != "", "key", "a metric name", self.key)
        require_choice("anchor", self.anchor, ("start", "end"))
        ok = isinstance(self.detrend_degree, int) and 0 <= self.detrend_degree <= 5
        require(ok, "detrend_degree", "an integer in 0..5", self.detrend_degree)
        ok = isinstance(self.low_bins, int) and self.low_bins >= 1
        require(ok, "low_bins", "an integer >= 1", self.low_bins)
        least = max(2 * self.low_bins + 2, self.detrend_degree + 2)
        ok = isinstance(self.min_points, int) and self.min_points >= least
        require(ok, "min_points", f"an integer >= {least} (2·low_bins + 2)", self.min_points)
        ok = isinstance(self.window, int) and self.window >= self.min_points
        require(ok, "window", f"an integer >= min_points ({self.min_points})", self.window)


def amplitude_spectrum(
    y: Float[np.ndarray, " N"], steps: Float[np.ndarray, " N"], degree: int
) -> Float[np.ndarray, " half"]:
    """Single-sided amplitude spectrum :math:`A_k`, k = 0..N//2, of ``y`` after removing
    its polynomial trend of ``degree`` in ``steps`` (Hann taper, coherent-gain normalised;
    module docstring, steps 2–3). ``A_0`` is the residual mean (≈ 0); units of ``y``."""
    n = len(y)
    u = (
        np.linspace(-1.0, 1.0, n)
        if steps[-1] == steps[0]
        else np.interp(steps, [steps[0], steps[-1]], [-1.0, 1.0])
    )
    r = y - np.polynomial.polynomial.polyval(u, np.polynomial.polynomial.polyfit(u, y, degree))
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)  # periodic Hann, (N,)
    return 2.0 * np.abs(np.fft.rfft(w * r)) / w.sum()  # (N//2 + 1,)


def _window(history: History, s: LossSpectrumSettings) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of the window, evenly spaced (module docstring, step 1).

    Raises:
        NotApplicable: if the metric is missing or has fewer than ``min_points`` points.
    """
    curve = history.series(s.key)
    curve = curve[np.isfinite(curve.to_numpy())]
    if len(curve) < s.min_points:
        raise NotApplicable(
            f"needs >= {s.min_points} logged points of {s.key!r}, has {len(curve)} by step "
            f"{history.step}"
        )
    curve = curve.iloc[: s.window] if s.anchor == "start" else curve.iloc[-s.window :]
    steps = curve.index.to_numpy(dtype=np.float64)
    values = curve.to_numpy(dtype=np.float64)
    even = np.linspace(steps[0], steps[-1], len(steps))
    if not np.allclose(steps, even):
        values = np.interp(even, steps, values)
    return even, values


@trajectory("loss_spectrum", settings=LossSpectrumSettings)
def loss_spectrum(
    history: History, settings: LossSpectrumSettings, *, generator: torch.Generator
) -> dict[str, float]:
    """Low-frequency oscillation amplitude of the loss curve up to t (module docstring).

    Args:
        history: what the run logged up to t; reads the metric ``settings.key``.
        settings: window, anchor, detrending degree and low band.
        generator: unused (the signal is deterministic).

    Returns:
        ``loss_spectrum/low_freq_amp`` (nats), ``loss_spectrum/low_freq_period`` (steps),
        ``loss_spectrum/high_low_ratio`` (dimensionless; absent if the low band has no
        power) and ``loss_spectrum/points``.

    Raises:
        NotApplicable: if the metric is not logged or has fewer than ``min_points`` finite
            points by t.
    """
    steps, values = _window(history, settings)
    n = len(values)
    amp = amplitude_spectrum(values, steps, settings.detrend_degree)  # (n//2 + 1,)
    low = amp[1 : settings.low_bins + 1]
    k = int(np.argmax(low)) + 1
    spacing = (steps[-1] - steps[0]) / (n - 1)
    out = {
        "loss_spectrum/low_freq_amp": float(low.max()),
        "loss_spectrum/low_freq_period": float(n * spacing / k),
        "loss_spectrum/points": float(n),
    }
    low_power = float(np.sum(low**2))
    if low_power > 0:
        out["loss_spectrum/high_low_ratio"] = float(
            np.sum(amp[settings.low_bins + 1 :] ** 2) / low_power
        )
    return out
