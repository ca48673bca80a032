"""The lead-time benchmark's outputs: tables (parquet + markdown), summary JSON and an HTML
report with ROC curves, lead-time distributions, critical data size, temperature fits
and the polymorph census. Built only from what ``detect.leadtime`` computed."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from phasewatch.report.html import page
from phasewatch.report.registry import figure_html
from phasewatch.store.atomic import write_parquet, write_text

TOP = 8  # signals shown in the ROC and lead-time figures


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-markdown table (no extra dependency), NaN/None shown as —."""
    cols = list(df.columns)

    def cell(v: Any) -> str:
        """One value: ``digits`` significant digits for floats, — for NaN/None."""
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return "—"
        return f"{v:.{digits}g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """Warning rows (variance, ac1) ranked by AUC, then the main-change-point rows by lead."""
    ews = table[table["indicator"] != "main_change_point"].sort_values("auc", ascending=False)
    cp = table[table["indicator"] == "main_change_point"].sort_values(
        "lead_median", ascending=False
    )
    return pd.concat([ews, cp], ignore_index=True)


def _roc_figure(roc: pd.DataFrame, top: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for _, r in top.iterrows():
        d = roc[(roc["key"] == r["key"]) & (roc["indicator"] == r["indicator"])]
        d = d.sort_values("false_alarm_rate")
        fig.add_scatter(
            x=d["false_alarm_rate"],
            y=d["hit_rate"],
            mode="lines+markers",
            line_shape="hv",
            name=f"{r['key']} · {r['indicator']} (AUC {r['auc']:.2f})",
        )
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line_dash="dot", name="chance")
    fig.update_layout(
        title="ROC of causal early warnings (score: max Kendall τ before onset / in null runs)",
        xaxis_title="false-alarm rate (null runs)",
        yaxis_title="hit rate (transition runs)",
        height=480,
    )
    return fig


def _lead_figure(cpl: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    order = cpl.groupby("key")["lead_frac"].median().sort_values(ascending=False).index[:TOP]
    for key in order:
        fig.add_box(y=cpl[cpl["key"] == key]["lead_frac"], name=key, boxpoints="all")
    fig.add_hline(y=0, line_dash="dot")
    fig.update_layout(
        title="Main change point of each signal relative to the behavioural onset "
        "(lead as a fraction of the start→onset delay; > 0 = before)",
        yaxis_title="lead / (onset − start)",
        height=460,
    )
    return fig


def _critical_html(cds: dict[str, Any]) -> list[str]:
    share = cds["per_fraction"]
    fig = go.Figure(go.Scatter(x=list(share), y=list(share.values()), mode="lines+markers"))
    for x, name in ((cds["estimate"], "estimate"), (cds["tian"], "Tian 2.7482·ln M/M")):
        if x is not None:
            fig.add_vline(x=x, line_dash="dash", annotation_text=name)
    fig.update_layout(
        title="Share of runs that transition within the budget vs training fraction",
        xaxis_title="train_frac",
        yaxis_title="share transitioning",
        height=380,
    )
    est, ci = cds["estimate"], cds["ci95"]
    text = (
        f"Critical training fraction (logistic 50% point): {est:.3f} "
        f"(95% bootstrap interval {ci[0]:.3f}–{ci[1]:.3f})"
        if est is not None and ci
        else "Critical training fraction: not identified (every fraction behaves alike)"
    )
    lo, hi = cds["bracket"]
    text += f"; bracketed by the fractions tested: {lo} (< 50% transition) and {hi}"
    if cds["tian"] is not None:
        text += f"; Tian 2025's 2.7482·ln M/M for M = {cds['modulus']}: {cds['tian']:.3f}."
    where = ", ".join(f"{k} = {v:g}" for k, v in cds["where"].items()) or "all runs"
    fig.update_layout(title=f"Share transitioning within the budget vs train_frac ({where})")
    return [f"<h3>{html.escape(where)}</h3><p>{html.escape(text)}</p>", figure_html(fig)]


def _temperature_html(fits: dict[str, Any], runs: pd.DataFrame) -> list[str]:
    parts = ["<h2>Temperature view: time to transition</h2><ul>"]
    for field, f in fits.items():
        pl, ar = f["power_law"], f["arrhenius"]
        parts.append(
            f"<li><code>{html.escape(field)}</code>: t ∝ {field}^b with b = "
            f"{pl['exponent']:.2f} (95% CI {pl['ci95'][0]:.2f}…{pl['ci95'][1]:.2f}, "
            f"n = {pl['n']}); Arrhenius ln t = a + b/{field}: b = {ar['exponent']:.3g} "
            f"(95% CI {ar['ci95'][0]:.3g}…{ar['ci95'][1]:.3g}); one intercept per setting of "
            f"{html.escape(', '.join(f.get('controls', [])) or 'nothing else')} "
            f"({pl.get('settings', 1)} settings)</li>"
        )
        trans = runs[runs["transitions"]]
        fig = go.Figure(go.Scatter(x=trans[field], y=trans["time_to_transition"], mode="markers"))
        fig.update_layout(
            xaxis_type="log",
            yaxis_type="log",
            xaxis_title=field,
            yaxis_title="time to transition (steps)",
            height=340,
            title=f"time to transition vs {field}",
        )
        parts.append(figure_html(fig))
    parts.append("</ul>")
    return parts


def _polymorph_html(census: dict[str, Any]) -> list[str]:
    rows = pd.DataFrame(
        [{"key frequencies": str(s["frequencies"]), "runs": s["runs"]} for s in census["sets"]]
    )
    return [
        "<h2>Polymorphs: key-frequency sets across runs</h2>",
        f"<p>{census['distinct_sets']} distinct sets over {census['runs']} transitioning runs.</p>",
        rows.to_html(index=False, border=0),
    ]


def _window_html(sens: pd.DataFrame | None) -> list[str]:
    if sens is None or not len(sens):
        return []
    wide = sens.pivot_table(
        index=["key", "indicator"],
        columns="window_frac",
        values=["auc", "defined_before_onset"],
    )
    return [
        "<h2>By indicator window (fraction of the planned run)</h2>",
        "<p>defined_before_onset: share of transition runs with enough history before "
        "their onset for τ to exist (a run without it scores −1 and cannot warn).</p>",
        wide.round(3).to_html(border=0, na_rep="—"),
    ]


def write_outputs(
    out: Path,
    tables: dict[str, pd.DataFrame],
    runs: pd.DataFrame,
    views: dict[str, Any],
    meta: dict[str, Any],
) -> Path:
    """Write ``leadtime.parquet``/``.md``, ``roc.parquet``, ``change_point_leads.parquet``,
    ``window_sensitivity.parquet``, ``runs.parquet``, ``summary.json`` and ``report.html``
    into ``out`` (created if missing).

    Args:
        out: the output directory.
        tables, runs, views, meta: the fields of a
            :class:`phasewatch.detect.leadtime.LeadTime`.

    Returns:
        The path of ``report.html``.
    """
    out.mkdir(parents=True, exist_ok=True)
    if "n_null" in tables["leadtime"]:
        tables["leadtime"]["n_null"] = tables["leadtime"]["n_null"].astype("Int64")
    table = ranked(tables["leadtime"]) if not tables["leadtime"].empty else tables["leadtime"]
    for name, df in (*tables.items(), ("runs", runs)):
        write_parquet(out / f"{name}.parquet", table if name == "leadtime" else df)
    write_text(out / "leadtime.md", markdown_table(table))
    write_text(out / "summary.json", json.dumps({**meta, **views}, indent=2, default=str))
    parts = [
        "<h1>phasewatch lead-time benchmark</h1>",
        f"<p class='summary'>{html.escape(meta['summary'])}</p>",
        f"<p>{html.escape(meta['caveat'])}</p>",
    ]
    if not table.empty:
        warn = table[table["indicator"] != "main_change_point"]
        parts += [figure_html(_roc_figure(tables["roc"], warn.head(TOP)))]
        if not tables["change_point_leads"].empty:
            parts += [figure_html(_lead_figure(tables["change_point_leads"]))]
        parts += ["<h2>Table</h2>", table.to_html(index=False, border=0, na_rep="—")]
    parts += _window_html(tables.get("window_sensitivity"))
    if views.get("critical_data_size"):
        parts.append("<h2>Critical data size</h2>")
        for cds in views["critical_data_size"]:
            parts += _critical_html(cds)
    if "temperature" in views:
        parts += _temperature_html(views["temperature"], runs)
    if "polymorphs" in views:
        parts += _polymorph_html(views["polymorphs"])
    if meta["excluded"]:
        parts += ["<h2>Excluded runs</h2>", pd.DataFrame(meta["excluded"]).to_html(index=False)]
    path = out / "report.html"
    write_text(path, page("phasewatch lead-time benchmark", parts))
    return path
