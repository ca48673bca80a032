"""Report section of induction-heads runs, built from the run store only.

Reads ``events.json`` (phase-change steps, induction heads, ICL positions),
``metrics.parquet`` (per-head scores and per-position loss at every eval step) and
``tables/attention_top_head.parquet`` (the top head's attention before/after).
"""

from __future__ import annotations

import html
import re
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from phasewatch.report.registry import figure_html, section
from phasewatch.store import RunDir

SCORES = (
    ("prefix_matching", "prefix matching"),
    ("previous_token", "previous token"),
    ("copying", "copying (OV eigenvalues)"),
)
_HEAD = re.compile(r"^heads/(\w+)/(L\d+H\d+)$")
_POS = re.compile(r"^loss/pos/(\d+)$")


def _step(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "—"


def summary_html(events: dict[str, Any]) -> str:
    """One paragraph: the phase change, the top head and the induction heads."""
    phase = events.get("phase_change", {})
    icl = phase.get("icl_score", {})
    pos = events.get("icl_positions", {})
    parts = []
    if icl.get("mid") is not None:
        parts.append(
            f"The ICL score (loss at token {pos.get('late')} minus token {pos.get('early')}) "
            f"changed by {icl['change']:+.2f} nats between steps {_step(icl['start'])} and "
            f"{_step(icl['end'])} (half-way at step {_step(icl['mid'])})."
        )
    elif icl:
        parts.append(
            f"No ICL phase change: the ICL score moved by {icl.get('change', 0):+.2f} nats."
        )
    heads = events.get("induction_heads", [])
    thr = events.get("induction_threshold")
    if heads:
        names = ", ".join(f"{h['name']} (from step {_step(h['onset_step'])})" for h in heads)
        parts.append(f"Induction heads (prefix matching ≥ {thr}): {names}.")
    elif thr is not None:
        parts.append(f"No head reached prefix matching ≥ {thr}.")
    prev = events.get("previous_token_heads", [])
    if prev:
        parts.append("Previous-token heads: " + ", ".join(h["name"] for h in prev) + ".")
    return f"<p>{html.escape(' '.join(parts))}</p>"


def heads_table_html(events: dict[str, Any]) -> str:
    """The induction and previous-token heads of ``events.json`` with their final scores."""
    rows = [{"role": "induction", **h} for h in events.get("induction_heads", [])]
    rows += [{"role": "previous token", **h} for h in events.get("previous_token_heads", [])]
    if not rows:
        return ""
    cols = ["name", "role", "prefix_matching", "previous_token", "copying", "onset_step"]
    df = pd.DataFrame(rows)[cols].rename(columns={"onset_step": "crossed threshold at step"})
    return df.to_html(index=False, border=0, na_rep="—")


def head_score_figure(metrics: pd.DataFrame, events: dict[str, Any]) -> go.Figure | None:
    """Per-head score curves over training, one panel per score, one line per head."""
    rows = metrics[metrics["key"].str.match(_HEAD.pattern)]
    if rows.empty:
        return None
    fig = make_subplots(rows=1, cols=3, subplot_titles=[t for _, t in SCORES])
    for col, (score, _) in enumerate(SCORES, start=1):
        sub = rows[rows["key"].str.startswith(f"heads/{score}/")]
        for key, s in sub.groupby("key"):
            name = _HEAD.match(key).group(2)
            trace = go.Scatter(x=s["step"], y=s["value"], mode="lines", name=name, legendgroup=name)
            fig.add_trace(trace.update(showlegend=col == 1), row=1, col=col)
        fig.update_xaxes(title_text="step", row=1, col=col)
    mid = events.get("phase_change", {}).get("icl_score", {}).get("mid")
    if mid is not None:
        fig.add_vline(x=mid, line_dash="dot", line_color="grey")
    fig.update_layout(height=380, title="Per-head scores (dotted: ICL phase change, half-way)")
    return fig


def position_loss_figure(metrics: pd.DataFrame, events: dict[str, Any]) -> go.Figure | None:
    """Loss per token index on the repeated-block sequences at the first and last eval step
    and half-way through the phase change."""
    rows = metrics[metrics["key"].str.match(_POS.pattern)]
    if rows.empty:
        return None
    rows = rows.assign(pos=rows["key"].str.extract(_POS.pattern)[0].astype(int))
    steps = sorted(rows["step"].unique())
    mid = events.get("phase_change", {}).get("icl_score", {}).get("mid")
    shown = [steps[0]] + ([mid] if mid in steps else []) + [steps[-1]]
    fig = go.Figure()
    for st in dict.fromkeys(shown):
        s = rows[rows["step"] == st].sort_values("pos")
        fig.add_trace(go.Scatter(x=s["pos"], y=s["value"], mode="lines", name=f"step {st:,}"))
    pos = events.get("icl_positions", {})
    for label in ("early", "late"):
        if pos.get(label) is not None:
            fig.add_vline(x=pos[label], line_dash="dot", annotation_text=label)
    fig.update_layout(
        height=360,
        title="Loss per token index on a random block followed by its repeat",
        xaxis_title="token index",
        yaxis_title="loss (nats)",
    )
    return fig


def attention_figure(table: pd.DataFrame, events: dict[str, Any]) -> go.Figure:
    """Heatmaps of the top induction head's attention before and after the transition."""
    top = events.get("top_induction_head", {})
    phases = [p for p in ("before", "after") if p in set(table["phase"])]
    titles = [f"{p} (step {int(table[table['phase'] == p]['step'].iloc[0]):,})" for p in phases]
    fig = make_subplots(rows=1, cols=len(phases), subplot_titles=titles)
    for col, p in enumerate(phases, start=1):
        t = table[table["phase"] == p]
        z = t.pivot(index="query", columns="key", values="weight")
        fig.add_trace(
            go.Heatmap(z=z.values, x=list(z.columns), y=list(z.index), coloraxis="coloraxis"),
            row=1,
            col=col,
        )
        fig.update_yaxes(autorange="reversed", title_text="query position", row=1, col=col)
        fig.update_xaxes(title_text="key position", row=1, col=col)
    fig.update_layout(
        height=460,
        coloraxis={"colorscale": "Viridis", "cmin": 0, "cmax": 1},
        title=f"Attention of the top induction head {top.get('name', '')} on a repeated sequence",
    )
    return fig


@section("induction")
def induction_section(run: RunDir) -> list[str]:
    """Summary, head table, per-head curves, per-position loss and attention heatmaps."""
    events, metrics = run.events(), run.metrics()
    parts = ["<h2>Induction heads</h2>", summary_html(events), heads_table_html(events)]
    for fig in (head_score_figure(metrics, events), position_loss_figure(metrics, events)):
        if fig is not None:
            parts.append(figure_html(fig))
    table = run.table("attention_top_head")
    if table is not None and not table.empty:
        parts.append(figure_html(attention_figure(table, events)))
    return [p for p in parts if p]
