"""The lead-time benchmark: which signals warn before the behaviour changes, how early,
and how often they warn when nothing happens.

Over a sweep's transition and null runs and their causal scores (:mod:`.sweep`: a run's
largest Kendall τ before its onset, or before the matched horizon for a null run), for
every series (metric or signal) and indicator (variance, ac1 — see ``ews``):

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

This module computes; :func:`phasewatch.api.leadtime` writes the results with
:mod:`phasewatch.report.leadtime`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phasewatch.detect import ews
from phasewatch.detect.changepoints import scale_for
from phasewatch.detect.run import DetectConfig, RunAnalysis
from phasewatch.detect.sweep import MIN_NULL, Sweep, collect, run_score, run_table, varying_fields
from phasewatch.detect.transitions import Target


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
        "cannot_fire": not ews.can_fire(theta),
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
    "cannot_fire",
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
        dead = warn[warn["cannot_fire"].astype(bool)]
        if len(dead):
            names = ", ".join(f"{r.key} · {r.indicator}" for r in dead.itertuples())
            text += f"Cannot fire (threshold above τ's maximum of 1): {names}. "
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


@dataclass
class LeadTime:
    """Everything the lead-time benchmark of a sweep computed (what
    :func:`phasewatch.report.leadtime.write_outputs` writes).

    Attributes:
        tables: ``leadtime`` (one row per series × indicator: threshold, cannot_fire (the
            threshold is above τ's maximum of 1), hit_rate, false_alarm_rate,
            lead_median/q25/q75 in steps, lead_frac_median, auc), ``roc``,
            ``change_point_leads`` and ``window_sensitivity``.
        runs: one row per analysed run (:func:`phasewatch.detect.sweep.run_table`).
        views: critical data size, temperature fits and polymorph census, where they
            apply (:func:`sweep_views`).
        meta: ``summary`` (text), ``caveat``, ``target``, ``settings`` and ``excluded``
            (runs left out, with the reason).
    """

    tables: dict[str, pd.DataFrame]
    runs: pd.DataFrame
    views: dict[str, Any]
    meta: dict[str, Any]


def leadtime(
    root: str | Path, target: Target, cfg: DetectConfig | None = None, *, progress: bool = False
) -> LeadTime:
    """The lead-time benchmark of a sweep directory (writes nothing; see
    :func:`phasewatch.api.leadtime` for the files).

    Raises:
        ConfigError: if the target is in no finished run (the message lists the keys).
        StoreError: if ``root`` holds no run.
    """
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
    return LeadTime(tables, runs, views, meta)
