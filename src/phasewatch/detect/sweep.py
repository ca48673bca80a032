"""A sweep's runs as one population: analysed, split into transition and null runs, scored,
and with warning thresholds calibrated on the null runs.

Over a directory of runs (a sweep): runs whose target crosses its threshold are
*transition* runs, the others *null* runs. For every series (metric or signal) and
indicator (variance, ac1 — see ``ews``) a run's score is the largest causal Kendall τ
reached before the onset for a transition run and, for a null run, before the *matched
horizon*: the median onset of the transition runs. Scoring null runs over their whole
length instead gives them up to 10× more steps in which to cross any threshold than
early-onset runs had (the first sweep here: onsets from 240 to 3,840 steps of 4,000),
which made every indicator look worse than chance (AUC < 0.5) for a reason unrelated to
warning. The warning threshold θ is calibrated on the null runs' scores at false-alarm
rate α (``ews.calibrate``).

:mod:`.leadtime` turns these scores into the lead-time benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from phasewatch.detect import ews
from phasewatch.detect.run import (
    DetectConfig,
    RunAnalysis,
    Thresholds,
    analyse_run,
    write_detect,
    write_with_surrogates,
)
from phasewatch.detect.transitions import Target
from phasewatch.errors import ConfigError, StoreError
from phasewatch.store import RunDir
from phasewatch.training.progress import track

MIN_NULL = 10  # null runs needed to calibrate thresholds on runs rather than surrogates


@dataclass
class Sweep:
    """The analysed runs of a directory and those left out (with the reason)."""

    runs: list[RunAnalysis]
    excluded: list[dict[str, str]]

    @property
    def nulls(self) -> list[RunAnalysis]:
        """The runs whose target never crosses its threshold."""
        return [a for a in self.runs if not a.transitions]

    @property
    def transitions(self) -> list[RunAnalysis]:
        """The runs whose target crosses its threshold (they have an onset)."""
        return [a for a in self.runs if a.transitions]

    @property
    def horizon(self) -> int | None:
        """Median onset of the transition runs: null runs are scored before it."""
        onsets = [a.onset["step"] for a in self.transitions]
        return int(np.median(onsets)) if onsets else None


def run_dirs(root: str | Path) -> list[RunDir]:
    """Every run directory (a folder with config.json) under ``root``, sorted.

    Raises:
        StoreError: if ``root`` does not exist or holds no run.
    """
    root = Path(root)
    if not root.is_dir():
        raise StoreError(f"{root}: no such directory")
    found = [RunDir(f.parent) for f in sorted(root.rglob("config.json"))]
    if not found:
        raise StoreError(f"{root}: no run directories (folders with config.json) under it")
    return found


def collect(
    root: str | Path, target: Target, cfg: DetectConfig, *, progress: bool = False
) -> Sweep:
    """Analyse every finished run under ``root``; failed, unfinished or unreadable runs and
    runs without the target are excluded and listed, never silently counted.

    Raises:
        ConfigError: if no finished run has the target key (the message lists the keys).
        StoreError: if ``root`` holds no run.
    """
    runs, excluded, keys = [], [], set()
    dirs = run_dirs(root)
    for rd in track(dirs, "analysing runs", enabled=progress):
        try:
            status = rd.status().get("status")
            if status != "done":
                excluded.append({"run": str(rd.path), "reason": f"status {status}"})
                continue
            runs.append(analyse_run(rd, target, cfg))
        except ConfigError as e:
            keys |= set(str(e).split("present: ")[-1].strip("[]").replace("'", "").split(", "))
            excluded.append({"run": str(rd.path), "reason": f"no series {target.key!r}"})
        except StoreError as e:
            excluded.append({"run": str(rd.path), "reason": str(e)})
    if not runs and keys:
        raise ConfigError(f"target={target.key!r} is in no finished run; present: {sorted(keys)}")
    return Sweep(runs, excluded)


def run_score(
    an: RunAnalysis, key: str, indicator: str, horizon: int | None = None
) -> float | None:
    """Largest τ of ``indicator`` on ``key`` before the onset (transition run) or before
    ``horizon`` (null run; None: the whole run); None if the series was too short, -1 if
    τ is never defined before that step."""
    ss = an.scored.get(key)
    if ss is None:
        return None
    tau = ss.scores[f"tau_{indicator}"]
    end = an.onset["step"] if an.transitions else horizon
    if end is not None:
        tau = tau[ss.steps < end]
    return float(ews.max_score(tau[None])[0]) if len(tau) else -1.0


def null_thresholds(sweep: Sweep, alpha: float) -> Thresholds:
    """θ per series and indicator from the null runs' scores (series scored in fewer than
    ``MIN_NULL`` null runs get none)."""
    out: Thresholds = {}
    keys = sorted({k for a in sweep.nulls for k in a.scored})
    for key in keys:
        for name in ews.INDICATORS:
            scores = [run_score(a, key, name, sweep.horizon) for a in sweep.nulls]
            scores = [s for s in scores if s is not None]
            if len(scores) >= MIN_NULL:
                out.setdefault(key, {})[name] = ews.calibrate(np.array(scores), alpha)
    return out


def detect_sweep(
    root: str | Path, target: Target, cfg: DetectConfig | None = None, *, progress: bool = False
) -> Sweep:
    """``detect`` on every run of a sweep, with thresholds calibrated on its null runs when
    there are at least ``MIN_NULL`` of them (else each run's AR(1) surrogates).

    Writes each analysed run's ``events.json`` ``detect`` block and its tables
    (:func:`phasewatch.detect.run.write_detect`).

    Raises:
        ConfigError: if the target is in no finished run (the message lists the keys).
        StoreError: if ``root`` holds no run.
    """
    cfg = cfg or DetectConfig()
    sweep = collect(root, target, cfg, progress=progress)
    if len(sweep.nulls) >= MIN_NULL:
        thresholds = null_thresholds(sweep, cfg.alpha)
        how = f"{len(sweep.nulls)} null runs of the sweep (α = {cfg.alpha})"
        for an in sweep.runs:
            write_detect(an, thresholds, cfg, how)
    else:  # the runs are analysed already: only the thresholds differ
        for an in sweep.runs:
            write_with_surrogates(an, cfg)
    return sweep


def run_table(sweep: Sweep) -> pd.DataFrame:
    """One row per analysed run: its config fields (task and train), whether and when it
    transitions, and its time to transition (onset − start, steps)."""
    rows = []
    for an in sweep.runs:
        cfg = an.rd.config()
        row = {"run": str(an.rd.path), **cfg["task"], **cfg["train"]}
        row |= {
            "transitions": an.transitions,
            "onset": an.onset["step"],
            "start": an.start,
            "time_to_transition": an.onset["step"] - an.start if an.transitions else None,
        }
        rows.append(row)
    return pd.DataFrame(rows)


def varying_fields(runs: pd.DataFrame) -> list[str]:
    """Numeric config fields (other than the seed) of :func:`run_table` that take more than
    one value across runs."""
    skip = {"run", "seed", "transitions", "onset", "start", "time_to_transition"}
    return [
        c
        for c in runs.columns
        if c not in skip
        and runs[c].map(repr).nunique() > 1
        and pd.api.types.is_numeric_dtype(runs[c])
    ]
