"""Report section "Developmental signals" for every run, built from the store only.

Reads ``signals.parquet`` (step, key, value, signal, settings), ``signals.json``
(warnings, calibration) and ``tables/{llc_traces,hessian_density,llc_calibration,
llc_calibration_traces}.parquet`` written by ``phasewatch measure``; draws the signals
over training steps, the LLC's SGLD loss traces, the Hessian spectral density and, when
present, the LLC calibration grid with its traces.
"""

from __future__ import annotations

import html
import json
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from phasewatch.report.registry import figure_html, section
from phasewatch.store import RunDir

# (panel title, keys or key prefixes) of the over-steps figure.
_PANELS = (
    ("LLC λ̂ (± std over chains)", ("llc/mean",)),
    ("Hessian top eigenvalues", ("hessian/top_eig/",)),
    ("Hessian trace (± SE) and min eigenvalue", ("hessian/trace", "hessian/min_eig")),
    ("gradient norm", ("grad/norm",)),
    ("gradient noise scale (samples)", ("grad/noise_scale",)),
    ("cos(∇L_t, ∇L_prev)", ("grad/cos_prev",)),
    ("total weight norm", ("geometry/norm/total",)),
    ("effective rank", ("geometry/eff_rank/",)),
)


def _wide(df: pd.DataFrame) -> pd.DataFrame:
    return df.pivot_table(index="step", columns="key", values="value", aggfunc="last")


def _keys(wide: pd.DataFrame, wanted: tuple[str, ...]) -> list[str]:
    out = []
    for w in wanted:
        out += [k for k in wide.columns if k == w or (w.endswith("/") and k.startswith(w))]
    return [k for k in dict.fromkeys(out) if k != "hessian/trace_se"]


def _error(wide: pd.DataFrame, key: str) -> dict | None:
    err = {"llc/mean": "llc/std", "hessian/trace": "hessian/trace_se"}.get(key)
    if err and err in wide:
        return {"type": "data", "array": wide[err].fillna(0).values, "visible": True}
    return None


def over_steps_figure(df: pd.DataFrame) -> go.Figure | None:
    """One panel per signal family over checkpoint steps; flagged LLC estimates in red."""
    wide = _wide(df)
    panels = [(t, _keys(wide, ks)) for t, ks in _PANELS]
    panels = [(t, ks) for t, ks in panels if ks]
    if not panels:
        return None
    cols = 2
    rows = math.ceil(len(panels) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[t for t, _ in panels])
    for i, (_, keys) in enumerate(panels):
        r, c = i // cols + 1, i % cols + 1
        for k in keys:
            s = wide[k]
            fig.add_trace(
                go.Scatter(
                    x=s.index, y=s.values, name=k, mode="lines+markers", error_y=_error(wide, k)
                ),
                row=r,
                col=c,
            )
        if keys == ["llc/mean"] and "llc/flag" in wide:
            bad = wide[wide["llc/flag"] > 0]
            fig.add_trace(
                go.Scatter(
                    x=bad.index,
                    y=bad["llc/mean"],
                    mode="markers",
                    marker={"color": "red", "size": 10, "symbol": "x"},
                    name="llc flagged (diverged / below init / above d/2)",
                ),
                row=r,
                col=c,
            )
        fig.update_xaxes(title_text="step", row=r, col=c)
    fig.update_layout(
        height=320 * rows, title="Developmental signals over training", legend={"font": {"size": 9}}
    )
    return fig


def traces_figure(traces: pd.DataFrame, burn_in: int | None) -> go.Figure:
    """SGLD loss traces of the last measured checkpoint, one line per chain."""
    step = traces["step"].max()
    t = traces[traces["step"] == step]
    fig = go.Figure()
    for chain, g in t.groupby("chain"):
        fig.add_trace(go.Scatter(x=g["draw"], y=g["loss"], mode="lines", name=f"chain {chain}"))
    if burn_in:
        fig.add_vline(x=burn_in, line_dash="dot", annotation_text="burn-in")
    fig.update_layout(
        title=f"LLC: SGLD loss traces at step {step:,}",
        xaxis_title="draw",
        yaxis_title="loss (nats)",
        height=380,
    )
    return fig


def density_figure(dens: pd.DataFrame, max_steps: int = 4) -> go.Figure:
    """Gaussian-smoothed SLQ spectral density at up to ``max_steps`` checkpoints (log y)."""
    steps = sorted(dens["step"].unique())
    if len(steps) > max_steps:
        steps = [steps[i] for i in np.linspace(0, len(steps) - 1, max_steps).round().astype(int)]
    lo, hi = dens["node"].min(), dens["node"].max()
    pad = 0.05 * (hi - lo or 1.0)
    grid = np.linspace(lo - pad, hi + pad, 400)
    sigma = (hi - lo or 1.0) / 100
    fig = go.Figure()
    for s in steps:
        d = dens[dens["step"] == s]
        runs = d["run"].nunique()
        z = (grid[:, None] - d["node"].values[None, :]) / sigma
        y = (d["weight"].values * np.exp(-0.5 * z**2)).sum(1) / (
            sigma * math.sqrt(2 * math.pi) * runs
        )
        fig.add_trace(go.Scatter(x=grid, y=np.maximum(y, 1e-12), mode="lines", name=f"step {s:,}"))
    fig.update_layout(
        title="Hessian spectral density (stochastic Lanczos quadrature)",
        xaxis_title="eigenvalue",
        yaxis={"type": "log", "title": "density"},
        height=380,
    )
    return fig


def calibration_figures(summary: pd.DataFrame, traces: pd.DataFrame) -> list[go.Figure]:
    """λ̂ over the ε × γ grid (passing points marked) and each point's chain-mean trace."""
    figs = []
    fig = go.Figure()
    for gamma, g in summary.groupby("gamma"):
        g = g.sort_values("epsilon")
        fig.add_trace(
            go.Scatter(
                x=g["epsilon"],
                y=g["llc_mean"],
                error_y={"type": "data", "array": g["llc_std"].fillna(0).values},
                mode="lines+markers",
                marker={"symbol": ["circle" if p else "x" for p in g["passes"]], "size": 9},
                name=f"γ={gamma:g}",
                text=g["reason"],
            )
        )
    best = summary[summary["recommended"]]
    if not best.empty:
        fig.add_trace(
            go.Scatter(
                x=best["epsilon"],
                y=best["llc_mean"],
                mode="markers",
                marker={"size": 16, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "red"}},
                name="recommended",
            )
        )
    step = int(summary["step"].iloc[0])
    fig.update_layout(
        title=f"LLC calibration at step {step:,} (x: fails the rule; hover for why)",
        xaxis={"type": "log", "title": "SGLD step ε"},
        yaxis_title="λ̂",
        height=400,
    )
    figs.append(fig)
    fig = go.Figure()
    for (eps, gamma, nbeta), g in traces.groupby(["epsilon", "gamma", "nbeta"]):
        mean = g.groupby("draw")["loss"].mean()
        fig.add_trace(
            go.Scatter(
                x=mean.index,
                y=mean.values,
                mode="lines",
                name=f"ε={eps:g} γ={gamma:g} nβ={nbeta:.3g}",
            )
        )
    fig.update_layout(
        title="Calibration traces (chain-mean probe loss per grid point)",
        xaxis_title="draw",
        yaxis_title="loss (nats)",
        height=420,
    )
    figs.append(fig)
    return figs


def _meta(run: RunDir) -> dict:
    f = run.path / "signals.json"
    try:
        return json.loads(f.read_text()) if f.exists() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}


def _llc_burn_in(meta: dict, traces: pd.DataFrame) -> int | None:
    h = traces.loc[traces["step"] == traces["step"].max(), "settings"].iloc[0]
    return meta.get("settings", {}).get(h, {}).get("settings", {}).get("burn_in")


def _warnings_html(meta: dict) -> str:
    rows = meta.get("warnings", [])
    if not rows:
        return ""
    body = "".join(
        f"<tr><td>{w['step']:,}</td><td>{html.escape(w['signal'])}</td>"
        f"<td>{html.escape(w['message'])}</td></tr>"
        for w in rows
    )
    head = "<tr><th>step</th><th>signal</th><th>message</th></tr>"
    return f"<h3>Signal warnings</h3><table>{head}{body}</table>"


@section("*")
def signals_section(run: RunDir) -> list[str]:
    """The developmental-signals section (empty if the run was never measured)."""
    parts: list[str] = []
    meta = _meta(run)
    f = run.path / "signals.parquet"
    if f.exists():
        df = pd.read_parquet(f)
        parts.append("<h2>Developmental signals</h2>")
        parts.append(
            "<p>Measured on the stored checkpoints by <code>phasewatch measure</code>: local "
            "learning coefficient λ̂ (SGLD, Lau et al. 2023), Hessian spectrum (Lanczos, "
            "Hutchinson, SLQ), gradient norm, noise scale and cosine to the previous "
            "checkpoint, weight and activation geometry.</p>"
        )
        if (fig := over_steps_figure(df)) is not None:
            parts.append(figure_html(fig))
        traces = run.table("llc_traces")
        if traces is not None and not traces.empty:
            parts.append(figure_html(traces_figure(traces, _llc_burn_in(meta, traces))))
        dens = run.table("hessian_density")
        if dens is not None and not dens.empty:
            parts.append(figure_html(density_figure(dens)))
        parts.append(_warnings_html(meta))
    summary, ctraces = run.table("llc_calibration"), run.table("llc_calibration_traces")
    if summary is not None and ctraces is not None and not summary.empty:
        rec = meta.get("llc_calibration", {}).get("recommended")
        parts.append("<h2>LLC calibration</h2>")
        parts.append(
            f"<p>Recommended SGLD setting: {html.escape(json.dumps(rec))} (rule: no divergence, "
            "every chain ≥ 0 and λ̂ ≤ d/2, stationary trace; then smallest γ, largest ε).</p>"
        )
        parts += [figure_html(fig) for fig in calibration_figures(summary, ctraces)]
    return [p for p in parts if p]
