"""``phasewatch detect RUN``: onsets, change points and causal early warnings of one run.

Reads ``metrics.parquet`` and ``signals.parquet``; writes the ``detect`` block of
``events.json`` and the tables ``ews`` (step, key, residual, variance, ac1, tau_variance,
tau_ac1) and ``change_points`` (key, step, scale).

Windows are fractions of the run's *planned* length (``train.steps`` in config.json),
converted to logged points per series: known before training starts, so no warning
depends on how long the run actually went on. The analysis of every series starts at the
run's ``start`` event (grokking: memorisation), itself decided causally when it happens:
the memorisation transient would otherwise dominate every indicator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from phasewatch.config import require
from phasewatch.detect import ews
from phasewatch.detect.changepoints import ChangePointConfig, change_points, scale_for
from phasewatch.detect.transitions import Target, onsets, require_key, run_series
from phasewatch.store import RunDir


@dataclass(frozen=True)
class DetectConfig:
    """Settings shared by ``detect`` and ``leadtime``.

    Attributes:
        window_frac: indicator and detrending window, as a fraction of the planned run.
            0.05 had the best AUCs on the grokking ``small`` lead-time sweep among 0.05,
            0.1 and 0.2 (the leadtime report shows all three; chosen on that sweep).
        alpha: false-alarm rate the warning threshold is calibrated to, in (0, 1).
        start_event: onset (events.json ``onsets``) at which analysis starts; absent → step 0.
        penalty: change-point penalty constant c (pen = c·σ̂²·ln n).
        surrogates: AR(1) surrogates per series for single-run thresholds.
    """

    window_frac: float = 0.05
    alpha: float = 0.1
    start_event: str = "memorisation"
    penalty: float = 3.0
    surrogates: int = 100

    def __post_init__(self) -> None:
        require(0 < self.window_frac <= 0.5, "window_frac", "a float in (0, 0.5]", self.window_frac)
        require(0 < self.alpha < 1, "alpha", "a float in (0, 1)", self.alpha)

    def ews_for(self, s: pd.Series, planned_steps: int) -> ews.EWSConfig:
        """Point-based windows for a series logged every ``median(diff(step))`` steps."""
        spacing = float(np.median(np.diff(s.index.to_numpy()))) if len(s) > 1 else 1.0
        w = max(4, int(round(self.window_frac * planned_steps / max(spacing, 1.0))))
        return ews.EWSConfig(
            window=w, detrend=w, min_points=w, alpha=self.alpha, surrogates=self.surrogates
        )


@dataclass
class SeriesScores:
    """The causal indicators of one series (arrays aligned with ``steps``)."""

    steps: np.ndarray
    values: np.ndarray
    scores: dict[str, np.ndarray]
    cfg: ews.EWSConfig


def start_step(rd: RunDir, cfg: DetectConfig) -> int:
    """The step of the run's ``start_event`` onset, or 0."""
    step = rd.events().get("onsets", {}).get(cfg.start_event, {}).get("step")
    return int(step) if step is not None else 0


def series_scores(series: dict[str, pd.Series], planned: int, start: int, cfg: DetectConfig):
    """:class:`SeriesScores` of every series from ``start`` on (series too short for their
    windows, and constant ones such as the setting ``llc/nbeta``, are skipped)."""
    out = {}
    for key, s in series.items():
        s = s[s.index >= start]
        if s.empty or s.max() == s.min():
            continue
        c = cfg.ews_for(s, planned)
        if len(s) < c.burn_in + c.min_points:
            continue
        x = s.to_numpy(dtype=float)
        if scale_for(x) == "log10":
            x = np.log10(x)
        sc = {k: v[0] for k, v in ews.scores(x[None], c).items()}
        out[key] = SeriesScores(s.index.to_numpy(), x, sc, c)
    return out


def load(rd: RunDir) -> tuple[dict[str, pd.Series], int]:
    """The run's scalar series and its planned number of steps."""
    from phasewatch.signals.runner import read_signals

    planned = int(rd.config()["train"]["steps"])
    return run_series(rd.metrics(), read_signals(rd)), planned


@dataclass
class RunAnalysis:
    """Everything ``detect`` derives from one run before thresholds are chosen.

    Attributes:
        onset: the target's onsets (:func:`transitions.onsets`); ``onset["step"]`` is None
            for a run that never transitions.
        start: step at which the analysis starts (the start event, or 0).
        change_points: change-point steps of every series.
        scored: causal indicators of every series long enough for its windows.
        series: every series of the run (metrics and signals), indexed by step.
        settled: ``start`` plus one indicator window (``window_frac`` of the planned run),
            in steps: changes before it belong to the start transient.
    """

    rd: RunDir
    onset: dict[str, Any]
    start: int
    change_points: dict[str, list[int]]
    scored: dict[str, SeriesScores]
    series: dict[str, pd.Series]
    settled: int

    @property
    def transitions(self) -> bool:
        return self.onset["step"] is not None


def analyse_run(rd: RunDir, target: Target, cfg: DetectConfig) -> RunAnalysis:
    """Onsets, change points and indicators of one run (nothing written).

    Raises:
        ConfigError: if ``target.key`` is not a series of the run (the message lists them).
    """
    series, planned = load(rd)
    start = start_step(rd, cfg)
    cp_cfg = ChangePointConfig(penalty=cfg.penalty)
    onset = onsets(require_key(series, target.key), target, cp_cfg, start)
    cps = {k: change_points(s.index.to_numpy(), s.to_numpy(), cp_cfg) for k, s in series.items()}
    scored = series_scores(series, planned, start, cfg)
    settled = start + int(cfg.window_frac * planned)
    return RunAnalysis(rd, onset, start, cps, scored, series, settled)


Thresholds = dict[str, dict[str, float]]  # key -> indicator -> θ


def write_detect(
    an: RunAnalysis, thresholds: Thresholds, cfg: DetectConfig, calibration: str
) -> dict[str, Any]:
    """Store the ``detect`` block in events.json and the ``ews``/``change_points`` tables.

    A warning's ``lead`` is onset − warning step (steps; positive = before the onset).
    """
    warnings: dict[str, Any] = {}
    rows = []
    onset = an.onset["step"]
    for key, ss in an.scored.items():
        entry: dict[str, Any] = {"window_points": ss.cfg.window}
        for name in ews.INDICATORS:
            theta = thresholds.get(key, {}).get(name)
            step = (
                None
                if theta is None
                else ews.first_warning(ss.steps, ss.scores[f"tau_{name}"], theta)
            )
            lead = onset - step if step is not None and onset is not None else None
            entry[name] = {"step": step, "threshold": theta, "lead": lead}
        warnings[key] = entry
        rows.append(pd.DataFrame({"step": ss.steps, "key": key, **ss.scores}))
    block = {
        "target": an.onset,
        "start": {"event": cfg.start_event, "step": an.start},
        "settings": {**asdict(cfg), "calibration": calibration},
        "change_points": an.change_points,
        "warnings": warnings,
    }
    events = dict(an.rd.events())
    events["detect"] = block
    an.rd.write_events(events)
    if rows:
        an.rd.write_table("ews", pd.concat(rows, ignore_index=True))
    cp_rows = [{"key": k, "step": st} for k, v in an.change_points.items() for st in v]
    an.rd.write_table("change_points", pd.DataFrame(cp_rows, columns=["key", "step"]))
    return block


def detect(rd: RunDir, target: Target, cfg: DetectConfig | None = None) -> dict[str, Any]:
    """Onsets, change points and early warnings of one run, with thresholds from AR(1)
    surrogates of each series' burn-in; stored in the run directory.

    Returns:
        The ``detect`` block written to ``events.json``.

    Raises:
        ConfigError: if ``target.key`` is not a series of the run (the message lists them).
    """
    cfg = cfg or DetectConfig()
    return write_with_surrogates(analyse_run(rd, target, cfg), cfg)


def write_with_surrogates(an: RunAnalysis, cfg: DetectConfig) -> dict[str, Any]:
    """:func:`write_detect` with thresholds from AR(1) surrogates of each series' burn-in."""
    thresholds = {
        key: ews.surrogate_thresholds(ss.values, ss.cfg, seed=0) for key, ss in an.scored.items()
    }
    return write_detect(an, thresholds, cfg, "AR(1) surrogates of each series' burn-in")
