"""Report section "Transitions and early warnings" for every run that ``phasewatch detect``
has analysed, built from the store only: the ``detect`` block of events.json and the
tables ``ews`` and ``change_points``."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

from phasewatch.report.registry import figure_html, section
from phasewatch.store import RunDir


def warnings_table(block: dict) -> pd.DataFrame:
    """One row per (series, indicator): warning step, lead before the onset, threshold."""
    rows = []
    for key, entry in block["warnings"].items():
        for name in ("ac1", "variance"):
            w = entry[name]
            rows.append(
                {
                    "series": key,
                    "indicator": name,
                    "warning step": w["step"],
                    "lead (steps)": w["lead"],
                    "τ threshold": None if w["threshold"] is None else round(w["threshold"], 3),
                    "can fire": "cannot fire" if w.get("cannot_fire") else "yes",
                    "window (points)": entry["window_points"],
                    "change points": ", ".join(
                        f"{s:,}" for s in block["change_points"].get(key, [])[:8]
                    ),
                }
            )
    df = pd.DataFrame(rows)
    return df.sort_values(["warning step", "series"], na_position="last") if len(df) else df


def tau_figure(ews: pd.DataFrame, block: dict, indicator: str) -> go.Figure:
    """Kendall τ of ``indicator`` over steps for every series, with the onset marked."""
    fig = go.Figure()
    for key, g in ews.groupby("key"):
        fig.add_scatter(x=g["step"], y=g[f"tau_{indicator}"], mode="lines", name=key)
    onset = block["target"]["step"]
    if onset is not None:
        fig.add_vline(
            x=onset, line_dash="dash", annotation_text=f"onset ({block['target']['definition']})"
        )
    fig.update_layout(
        title=f"causal Kendall τ of the rolling {indicator} (warning above the series' threshold)",
        xaxis_title="step",
        yaxis_title="τ",
        height=380,
    )
    return fig


@section("*")
def detect_section(run: RunDir) -> list[str]:
    """The transitions and early-warnings section (HTML fragments) from the ``detect``
    block of ``events.json``; empty if the run was never analysed."""
    block = run.events().get("detect")
    if not block:
        return []
    t = block["target"]
    onset = "never" if t["step"] is None else f"step {t['step']:,}"
    defs = ", ".join(f"{k}: {'—' if v is None else f'{v:,}'}" for k, v in t["all"].items())
    what = (
        "No target was set (a watched run), so no onset or lead times."
        if t["key"] is None
        else f"Onset of {html.escape(t['key'])} {html.escape(t['op'])} {t['threshold']:g} by "
        f"{html.escape(t['definition'])}: {onset} ({html.escape(defs)})."
    )
    parts = [
        "<h2>Transitions and early warnings</h2>",
        f"<p>{what} Analysis from the "
        f"{html.escape(block['start']['event'])} onset (step {block['start']['step']:,}); "
        f"thresholds calibrated on {html.escape(block['settings']['calibration'])} at a "
        f"false-alarm rate of {block['settings']['alpha']:g}.</p>",
    ]
    ews = run.table("ews")
    if ews is not None and len(ews):
        parts += [
            figure_html(tau_figure(ews, block, "ac1")),
            figure_html(tau_figure(ews, block, "variance")),
        ]
    parts.append(warnings_table(block).to_html(index=False, border=0, na_rep="—"))
    return parts
