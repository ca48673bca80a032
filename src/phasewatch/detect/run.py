"""``phasewatch detect RUN``: onsets, change points and causal early warnings of one run.

Reads ``metrics.parquet`` and ``signals.parquet``; writes the ``detect`` block of
``events.json`` and the tables ``ews`` (step, key, residual, variance, ac1, tau_variance,
tau_ac1) and ``change_points`` (key, step, scale).

Windows are fractions of the run's *planned* length (``train.steps`` in config.json),
converted to logged points per series: known before training starts, so no warning
depends on how long the run actually went on. The analysis of every series starts at the
run's ``start`` event (grokking: memorisation), itself decided causally when it happens:
the memorisation transient would otherwise dominate every indicator.

**Per-series decisions are causal too** (:class:`SeriesPlan`, :func:`plan_series`). What
the analysis of a series needs to decide — its logging interval (hence the window in
points), whether it is analysed on a log10 scale, whether it is skipped as constant (a
setting such as ``llc/nbeta``) and how long its AR(1) surrogates are — is decided from its
first points only: the interval from the first ``SPACING_POINTS`` logged steps, scale and
constancy from the burn-in (the points before the first indicator value, the same points
the surrogates are fitted to), and the surrogate length from the *planned* run, not the
observed one. A warning at step t therefore depends on no value logged after t. A series
analysed on log10 whose later values reach <= 0 has NaN there (no indicator, no warning on
windows that contain them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from phasewatch.config import require
from phasewatch.detect import ews
from phasewatch.detect.changepoints import ChangePointConfig, change_points, scale_for
from phasewatch.detect.transitions import Target, require_key, run_series, target_onsets
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
        """Point-based windows for a series logged every ``spacing(steps)`` steps."""
        return self.ews_for_steps(s.index.to_numpy(), planned_steps)

    def ews_for_steps(self, steps: np.ndarray, planned_steps: int) -> ews.EWSConfig:
        """:meth:`ews_for` from the logged steps alone (only the first few are read)."""
        w = max(4, int(round(self.window_frac * planned_steps / spacing(steps))))
        return ews.EWSConfig(
            window=w, detrend=w, min_points=w, alpha=self.alpha, surrogates=self.surrogates
        )


SPACING_POINTS = 6  # logged points whose median step gap is a series' logging interval


def spacing(steps: np.ndarray) -> float:
    """Logging interval in steps: the median gap of the first ``SPACING_POINTS`` steps
    (>= 1; 1 for a single point). Every scored series has more points than that."""
    head = np.asarray(steps)[:SPACING_POINTS]
    return max(float(np.median(np.diff(head))), 1.0) if len(head) > 1 else 1.0


@dataclass(frozen=True)
class SeriesPlan:
    """How one series is analysed, decided from its first points only (module docstring).

    Attributes:
        cfg: indicator windows in points (from the first ``SPACING_POINTS`` steps).
        log10: analyse log10 of the values (the burn-in is positive and spans > 2 decades).
        planned_points: points the series has at the planned end of the run at its logging
            interval (at least ``burn_in + min_points``): the length of its surrogates.
    """

    cfg: ews.EWSConfig
    log10: bool
    planned_points: int

    def transform(self, values: np.ndarray) -> np.ndarray:
        """The values the indicators see: log10 (NaN where <= 0) or as they are."""
        x = np.asarray(values, dtype=float)
        if not self.log10:
            return x
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x > 0, np.log10(np.where(x > 0, x, 1.0)), np.nan)


def plan_series(
    steps: np.ndarray, values: np.ndarray, planned: int, cfg: DetectConfig
) -> SeriesPlan | None:
    """The :class:`SeriesPlan` of a series (logged from the analysis start on), or None if it
    is skipped: fewer points than its burn-in, or a constant burn-in.

    Reads ``steps[:SPACING_POINTS]`` and ``values[:burn_in]`` only.
    """
    steps = np.asarray(steps)
    c = cfg.ews_for_steps(steps[:SPACING_POINTS], planned)
    burn = np.asarray(values[: c.burn_in], dtype=float)
    if len(burn) < c.burn_in or burn.max() == burn.min():
        return None
    points = int((planned - steps[0]) // spacing(steps)) + 1
    return SeriesPlan(c, scale_for(burn) == "log10", max(points, c.burn_in + c.min_points))


@dataclass
class SeriesScores:
    """The causal indicators of one series (arrays aligned with ``steps``).

    Attributes:
        values: the analysed values (after the plan's transform).
        plan: the series' :class:`SeriesPlan` (None only for callers that build scores by
            hand; surrogate thresholds then use the observed length).
    """

    steps: np.ndarray
    values: np.ndarray
    scores: dict[str, np.ndarray]
    cfg: ews.EWSConfig
    plan: SeriesPlan | None = None

    def surrogate_thresholds(self, *, seed: int = 0) -> dict[str, float]:
        """θ per indicator from AR(1) surrogates of the burn-in, as long as the planned run."""
        n = self.plan.planned_points if self.plan is not None else len(self.values)
        return ews.surrogate_thresholds(self.values, self.cfg, n=n, seed=seed)


def start_step(rd: RunDir, cfg: DetectConfig) -> int:
    """The step of the run's ``start_event`` onset, or 0."""
    step = rd.events().get("onsets", {}).get(cfg.start_event, {}).get("step")
    return int(step) if step is not None else 0


def series_scores(series: dict[str, pd.Series], planned: int, start: int, cfg: DetectConfig):
    """:class:`SeriesScores` of every series from ``start`` on (series too short for their
    windows, and those constant over their burn-in such as the setting ``llc/nbeta``, are
    skipped; see :func:`plan_series`)."""
    out = {}
    for key, s in series.items():
        s = s[s.index >= start]
        if s.empty:
            continue
        steps, raw = s.index.to_numpy(), s.to_numpy(dtype=float)
        plan = plan_series(steps, raw, planned, cfg)
        if plan is None or len(s) < plan.cfg.burn_in + plan.cfg.min_points:
            continue
        x = plan.transform(raw)
        sc = {k: v[0] for k, v in ews.scores(x[None], plan.cfg).items()}
        out[key] = SeriesScores(steps, x, sc, plan.cfg, plan)
    return out


def load(rd: RunDir) -> tuple[dict[str, pd.Series], int]:
    """The run's scalar series and its planned number of steps."""
    from phasewatch.store.signals import read_signals

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
        """Whether the run reached the target's onset."""
        return self.onset["step"] is not None


def analyse_run(rd: RunDir, target: Target, cfg: DetectConfig) -> RunAnalysis:
    """Onsets, change points and indicators of one run (nothing written).

    Raises:
        ConfigError: if ``target.key`` is not a series of the run (the message lists them).
    """
    series, planned = load(rd)
    start = start_step(rd, cfg)
    cp_cfg = ChangePointConfig(penalty=cfg.penalty)
    onset = target_onsets(require_key(series, target.key), target, cp_cfg, start)
    cps = {k: change_points(s.index.to_numpy(), s.to_numpy(), cp_cfg) for k, s in series.items()}
    scored = series_scores(series, planned, start, cfg)
    settled = start + int(cfg.window_frac * planned)
    return RunAnalysis(rd, onset, start, cps, scored, series, settled)


Thresholds = dict[str, dict[str, float]]  # key -> indicator -> θ


def write_detect(
    an: RunAnalysis, thresholds: Thresholds, cfg: DetectConfig, calibration: str
) -> dict[str, Any]:
    """Store the ``detect`` block in events.json and the ``ews``/``change_points`` tables.

    A warning's ``lead`` is onset − warning step (steps; positive = before the onset);
    ``cannot_fire`` marks an indicator whose threshold is above τ's maximum of 1 (reported
    as "cannot fire", not as silent: :func:`~phasewatch.detect.ews.can_fire`).
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
            entry[name] = {
                "step": step,
                "threshold": theta,
                "lead": lead,
                "cannot_fire": not ews.can_fire(theta),
            }
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
    """:func:`write_detect` with thresholds from AR(1) surrogates of each series' burn-in
    (as long as the planned run: :meth:`SeriesScores.surrogate_thresholds`)."""
    thresholds = {key: ss.surrogate_thresholds(seed=0) for key, ss in an.scored.items()}
    return write_detect(an, thresholds, cfg, "AR(1) surrogates of each series' burn-in")
