"""The lead-time benchmark: which signals warn before the behaviour changes, how early,
and how often they warn when nothing happens.

Over a directory of runs (a sweep): runs whose target crosses its threshold are
*transition* runs, the others *null* runs. For every series (metric or signal) and
indicator (variance, ac1 — see ``ews``):

* a run's score is the largest causal Kendall τ reached before the onset for a
  transition run and, for a null run, before the *matched horizon*: the median onset of
  the transition runs. Scoring null runs over their whole length instead gives them up
  to 10× more steps in which to cross any threshold than early-onset runs had (the first
  sweep here: onsets from 240 to 3,840 steps of 4,000), which made every indicator look
  worse than chance (AUC < 0.5) for a reason unrelated to warning;
* the warning threshold θ is calibrated on the null runs' scores at false-alarm rate α
  (``ews.calibrate``); the reported false-alarm rate is leave-one-out (θ from the other
  null runs), so it is not the calibration's own guarantee;
* hit rate = transition runs with a warning before their onset; lead time = onset −
  first warning (steps, and as a fraction of the start→onset delay, e.g. memorisation →
  generalisation); ROC over θ and its AUC (= P(transition score > null score)).

And, not causal but the literature's claim ("restricted loss and weight norm move before
test loss", Nanda et al. 2023): the *main change point* of each series (the one with the
largest mean shift once the memorisation transient is a window behind, ``changepoints``)
against the onset.

Caveat reported with the results: null runs come from other hyperparameters (e.g. weight
decay 0), so a signal can separate the conditions without anticipating the transition.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phasewatch.detect import ews
from phasewatch.detect.changepoints import scale_for
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

MIN_NULL = 10  # null runs needed to calibrate thresholds on runs rather than surrogates


@dataclass
class Sweep:
    """The analysed runs of a directory and those left out (with the reason)."""

    runs: list[RunAnalysis]
    excluded: list[dict[str, str]]

    @property
    def nulls(self) -> list[RunAnalysis]:
        return [a for a in self.runs if not a.transitions]

    @property
    def transitions(self) -> list[RunAnalysis]:
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
    for rd in _bar(dirs, progress, "analysing runs"):
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


def _bar(items: list, enabled: bool, what: str):
    if not enabled:
        return items
    from rich.progress import track

    return track(items, description=what)


def run_score(
    an: RunAnalysis, key: str, indicator: str, horizon: int | None = None
) -> float | None:
    """Largest τ of ``indicator`` on ``key`` before the onset (transition run) or before
    ``horizon`` (null run; None: the whole run); None if the series was too short."""
    ss = an.scored.get(key)
    if ss is None:
        return None
    tau = ss.scores[f"tau_{indicator}"]
    end = an.onset["step"] if an.transitions else horizon
    if end is not None:
        tau = tau[ss.steps < end]
    return float(ews.max_score(tau[None])[0]) if len(tau) else -1.0


def null_thresholds(sweep: Sweep, alpha: float) -> Thresholds:
    """θ per series and indicator from the null runs' scores."""
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
    there are at least ``MIN_NULL`` of them (else each run's AR(1) surrogates)."""
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


def _start_to_onset(an: RunAnalysis) -> int:
    return max(int(an.onset["step"]) - an.start, 1)


def indicator_row(sweep: Sweep, key: str, name: str, alpha: float) -> dict[str, Any] | None:
    """One row of the benchmark table for (series, indicator); None without enough runs."""
    trans = [(a, run_score(a, key, name)) for a in sweep.transitions]
    trans = [(a, s) for a, s in trans if s is not None]
    h = sweep.horizon
    nulls = np.array([s for a in sweep.nulls if (s := run_score(a, key, name, h)) is not None])
    if len(nulls) < MIN_NULL or not trans:
        return None
    theta = ews.calibrate(nulls, alpha)
    loo = [nulls[i] >= ews.calibrate(np.delete(nulls, i), alpha) for i in range(len(nulls))]
    leads, fracs = [], []
    for a, _ in trans:
        ss = a.scored[key]
        w = ews.first_warning(ss.steps, ss.scores[f"tau_{name}"], theta, until=a.onset["step"] - 1)
        if w is not None:
            leads.append(a.onset["step"] - w)
            fracs.append(leads[-1] / _start_to_onset(a))
    tscores = np.array([s for _, s in trans])  # -1: τ never defined before the onset
    auc = float((tscores[:, None] > nulls).mean() + 0.5 * (tscores[:, None] == nulls).mean())
    return {
        "key": key,
        "indicator": name,
        "n_transition": len(trans),
        "n_null": len(nulls),
        "defined_before_onset": float((tscores > -1).mean()),
        "threshold": theta,
        "hit_rate": len(leads) / len(trans),
        "false_alarm_rate": float(np.mean(loo)),
        "lead_median": float(np.median(leads)) if leads else None,
        "lead_q25": float(np.percentile(leads, 25)) if leads else None,
        "lead_q75": float(np.percentile(leads, 75)) if leads else None,
        "lead_frac_median": float(np.median(fracs)) if fracs else None,
        "auc": auc,
    }


def roc(sweep: Sweep, key: str, name: str) -> pd.DataFrame:
    """Hit rate and (in-sample) false-alarm rate for every threshold between the scores."""
    t = np.array([s for a in sweep.transitions if (s := run_score(a, key, name)) is not None])
    h = sweep.horizon
    n = np.array([s for a in sweep.nulls if (s := run_score(a, key, name, h)) is not None])
    grid = np.unique(np.r_[t, n, np.inf])
    return pd.DataFrame(
        {
            "key": key,
            "indicator": name,
            "threshold": grid,
            "hit_rate": [(t >= g).mean() if len(t) else np.nan for g in grid],
            "false_alarm_rate": [(n >= g).mean() if len(n) else np.nan for g in grid],
        }
    )


def main_change_point(an: RunAnalysis, key: str) -> int | None:
    """The change point of ``key`` with the largest absolute mean shift, among those after
    ``an.settled`` (the memorisation transient, which moves every series at once, would
    otherwise be every series' main change). Works on sparse series too (signals measured
    on a few checkpoints), which are too short for the indicators."""
    s = an.series.get(key)
    cps = [c for c in an.change_points.get(key, []) if c >= an.settled]
    if s is None or not cps:
        return None
    x = np.log10(s) if scale_for(s.to_numpy()) == "log10" else s  # as change_points did
    bounds = [x.index[0], *cps, x.index[-1] + 1]
    means = [x[(x.index >= a) & (x.index < b)].mean() for a, b in zip(bounds[:-1], bounds[1:])]
    return int(cps[int(np.argmax(np.abs(np.diff(means))))])


def change_point_leads(sweep: Sweep) -> pd.DataFrame:
    """Per transition run and series: onset − main change point (steps; > 0 = before)."""
    rows = []
    for an in sweep.transitions:
        for key in an.series:
            cp = main_change_point(an, key)
            if cp is not None:
                lead = an.onset["step"] - cp
                frac = lead / _start_to_onset(an)
                rows.append(
                    {
                        "run": str(an.rd.path),
                        "key": key,
                        "change_point": cp,
                        "lead": lead,
                        "lead_frac": frac,
                    }
                )
    return pd.DataFrame(rows, columns=["run", "key", "change_point", "lead", "lead_frac"])


TABLE_COLUMNS = [
    "key",
    "indicator",
    "n_transition",
    "n_null",
    "defined_before_onset",
    "threshold",
    "hit_rate",
    "false_alarm_rate",
    "lead_median",
    "lead_q25",
    "lead_q75",
    "lead_frac_median",
    "auc",
]


def benchmark(sweep: Sweep, alpha: float) -> dict[str, pd.DataFrame]:
    """The benchmark tables: ``leadtime`` (one row per series × indicator, plus the
    ``change_point`` rows), ``roc`` and ``change_point_leads`` (per run)."""
    keys = sorted({k for a in sweep.runs for k in a.scored})
    rows = [r for k in keys for n in ews.INDICATORS if (r := indicator_row(sweep, k, n, alpha))]
    cpl = change_point_leads(sweep)
    for key, g in cpl.groupby("key"):
        rows.append(
            {
                "key": key,
                "indicator": "main_change_point",
                "n_transition": len(g),
                "hit_rate": float((g["lead"] > 0).mean()),
                "lead_median": float(g["lead"].median()),
                "lead_q25": float(g["lead"].quantile(0.25)),
                "lead_q75": float(g["lead"].quantile(0.75)),
                "lead_frac_median": float(g["lead_frac"].median()),
            }
        )
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    rocs = [roc(sweep, k, n) for k in keys for n in ews.INDICATORS]
    return {
        "leadtime": table,
        "roc": pd.concat(rocs, ignore_index=True) if rocs else pd.DataFrame(),
        "change_point_leads": cpl,
    }


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
    """Config fields (other than the seed) that take more than one value across runs."""
    skip = {"run", "seed", "transitions", "onset", "start", "time_to_transition"}
    return [
        c
        for c in runs.columns
        if c not in skip
        and runs[c].map(repr).nunique() > 1
        and pd.api.types.is_numeric_dtype(runs[c])
    ]


def sweep_views(sweep: Sweep, runs: pd.DataFrame) -> dict[str, Any]:
    """Critical data size, temperature fits and the polymorph census (where they apply)."""
    from phasewatch.detect import physics

    out: dict[str, Any] = {}
    varying = varying_fields(runs)
    if "train_frac" in varying:
        # per setting of the other varying fields: weight decay 0 never generalising is not
        # evidence about the data size
        others = [f for f in varying if f != "train_frac"]
        groups = runs.groupby(others) if others else [((), runs)]
        out["critical_data_size"] = []
        for values, g in groups:
            if g["train_frac"].nunique() < 2:
                continue
            modulus = int(g["p"].iloc[0]) if "p" in g and g["p"].nunique() == 1 else None
            values = values if isinstance(values, tuple) else (values,)
            res = physics.critical_data_size(g, modulus)
            out["critical_data_size"].append({"where": dict(zip(others, values)), **res})
    fields = [f for f in ("lr", "weight_decay") if f in varying]
    trans = runs[runs["transitions"]]
    if fields and len(trans):
        out["temperature"] = physics.temperature_fits(trans, fields, varying)
    sets = [a.rd.events().get("key_frequencies") for a in sweep.transitions]
    if any(s is not None for s in sets):
        out["polymorphs"] = physics.polymorph_census([s for s in sets if s is not None])
    return out


def _summary(sweep: Sweep, table: pd.DataFrame, target: Target, cfg: DetectConfig) -> str:
    n_t, n_n = len(sweep.transitions), len(sweep.nulls)
    text = (
        f"{len(sweep.runs)} runs analysed: {n_t} transition ({target.key} {target.op} "
        f"{target.threshold:g}, onset by {target.onset}), {n_n} never do; "
        f"{len(sweep.excluded)} excluded. "
    )
    warn = table[table["indicator"] != "main_change_point"] if len(table) else table
    warn = warn[warn["key"] != target.key] if len(warn) else warn  # not the behaviour itself
    if len(warn):
        best = warn.sort_values("auc", ascending=False).iloc[0]
        lead = best["lead_median"]
        text += (
            f"Best causal warning: {best['key']} · {best['indicator']} (AUC {best['auc']:.2f}; "
            f"at the threshold calibrated for α = {cfg.alpha:g}: hit rate "
            f"{best['hit_rate']:.0%}, leave-one-out false-alarm rate "
            f"{best['false_alarm_rate']:.0%}"
            + (f", median lead {lead:,.0f} steps)" if lead is not None else ")")
            + ". "
        )
    else:
        text += f"Too few null runs (< {MIN_NULL}) to calibrate warnings. "
    cp = table[table["indicator"] == "main_change_point"] if len(table) else table
    for key in ("progress/restricted_loss", "weights/total_norm", "llc/mean"):
        row = cp[cp["key"] == key]
        if len(row):
            r = row.iloc[0]
            text += (
                f"{key}'s main change point precedes the onset in {r['hit_rate']:.0%} of "
                f"{r['n_transition']} runs (median lead {r['lead_median']:,.0f} steps). "
            )
    return text


CAVEAT = (
    "Null runs differ from transition runs in their hyperparameters (e.g. weight decay 0 or "
    "a training fraction below the critical size), so a signal can separate the conditions "
    "without anticipating the transition; main change points are found on the whole series "
    "(not causal) and restricted loss uses the final model's key frequencies (retrospective)."
)


SENSITIVITY_WINDOWS = (0.05, 0.1, 0.2)


def window_sensitivity(
    root: str | Path, target: Target, cfg: DetectConfig, table: pd.DataFrame
) -> pd.DataFrame:
    """AUC and hit rate of every warning row at each window of ``SENSITIVITY_WINDOWS``
    (columns ``key``, ``indicator``, ``window_frac``, ``auc``, ``hit_rate``,
    ``defined_before_onset``: the share of transition runs long enough before their onset
    for τ to exist — wider windows need more history), so a reader sees whether a
    conclusion depends on the window."""
    frames = []
    for wf in SENSITIVITY_WINDOWS:
        if wf == cfg.window_frac:
            t = table
        else:
            other = DetectConfig(**{**vars(cfg), "window_frac": wf})
            t = benchmark(collect(root, target, other), cfg.alpha)["leadtime"]
        if "auc" in t:
            t = t[t["indicator"] != "main_change_point"]
            cols = ["key", "indicator", "auc", "hit_rate", "defined_before_onset"]
            frames.append(t[cols].assign(window_frac=wf))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def leadtime(
    root: str | Path,
    target: Target,
    cfg: DetectConfig | None = None,
    *,
    out: str | Path | None = None,
    progress: bool = False,
) -> Path:
    """The lead-time benchmark of a sweep directory; returns the path of its report.

    Writes into ``out`` (default ``<root>/leadtime``): ``leadtime.parquet``/``.md`` (one
    row per series × indicator: hit_rate, false_alarm_rate, lead_median/q25/q75 in steps,
    lead_frac_median, auc), ``roc.parquet``, ``change_point_leads.parquet``,
    ``runs.parquet``, ``window_sensitivity.parquet``, ``summary.json`` and ``report.html``.

    Raises:
        ConfigError: if the target is in no finished run (the message lists the keys).
        StoreError: if ``root`` holds no run.
    """
    from phasewatch.report.leadtime import write_outputs

    cfg = cfg or DetectConfig()
    sweep = collect(root, target, cfg, progress=progress)
    tables = benchmark(sweep, cfg.alpha)
    tables["window_sensitivity"] = window_sensitivity(root, target, cfg, tables["leadtime"])
    runs = run_table(sweep)
    views = sweep_views(sweep, runs) if len(runs) else {}
    meta = {
        "summary": _summary(sweep, tables["leadtime"], target, cfg),
        "caveat": CAVEAT,
        "target": vars(target),
        "settings": vars(cfg),
        "excluded": sweep.excluded,
    }
    return write_outputs(Path(out) if out else Path(root) / "leadtime", tables, runs, views, meta)
