"""Report section of ``superposition`` runs (Elhage et al. 2022), built from the store only.

Reads ``tables/{instances,features,gram,capacity,phase_diagram}.parquet`` and
``events.json`` written by the phenomenon's whole-run analysis and draws: the W columns
(m = 2), the Gram matrices WᵀW across densities, D* and the D_i scatter against
1/(1 − S) with the paper's fractions marked, the D_i histogram, the phase diagram (for
an importance × density grid), the polytope counts and the capacity table.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from phasewatch.report.registry import figure_html, section
from phasewatch.store import RunDir

# The paper's fractions (Elhage et al. 2022, "The Geometry of Superposition"); the report
# must not import a phenomenon module, so they are restated here.
_FRACTIONS = (
    (1.0, "1 dedicated"),
    (3 / 4, "3/4 tetrahedron"),
    (2 / 3, "2/3 triangle"),
    (1 / 2, "1/2 digon"),
    (2 / 5, "2/5 pentagon"),
    (3 / 8, "3/8 square antiprism"),
)
_CLASSES = (
    "dedicated",
    "tetrahedron",
    "triangle",
    "digon",
    "pentagon",
    "square antiprism",
    "other",
    "not represented",
)
_PHASE_COLORS = {"not represented": "#4c78a8", "dedicated": "#54a24b", "superposition": "#e45756"}
_MAX_PANELS = 10


def _spread(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """At most ``k`` rows of ``frame``, evenly spaced (first and last kept)."""
    if len(frame) <= k:
        return frame
    idx = np.unique(np.linspace(0, len(frame) - 1, k).round().astype(int))
    return frame.iloc[idx]


def _label(row: pd.Series, grid: bool) -> str:
    text = f"1−S={row['density']:.3g}"
    return text + (f", r={row['relative_importance']:.2g}" if grid else "")


def _fraction_lines(fig: go.Figure, row: int | None = None, col: int | None = None) -> None:
    for value, name in _FRACTIONS:
        kw = {"row": row, "col": col} if row else {}
        fig.add_hline(
            y=value,
            line_dash="dot",
            line_color="grey",
            annotation_text=name,
            annotation_position="right",
            annotation_font_size=9,
            **kw,
        )


def _columns_figure(inst: pd.DataFrame, feats: pd.DataFrame, grid: bool) -> go.Figure:
    """Each feature's column W_i as an arrow from the origin (m = 2), one panel per instance."""
    shown = _spread(inst, _MAX_PANELS)
    cols = 5
    rows = math.ceil(len(shown) / cols)
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=[_label(r, grid) for _, r in shown.iterrows()]
    )
    lim = max(1.2, float(feats[["w0", "w1"]].abs().max().max()) * 1.1)
    for p, (_, r) in enumerate(shown.iterrows()):
        f = feats[feats["instance"] == r["instance"]]
        xs, ys = [], []
        for w0, w1 in zip(f["w0"], f["w1"]):
            xs += [0.0, w0, None]
            ys += [0.0, w1, None]
        rc = {"row": p // cols + 1, "col": p % cols + 1}
        fig.add_trace(
            go.Scatter(x=xs, y=ys, mode="lines", line_color="#888", showlegend=False), **rc
        )
        fig.add_trace(
            go.Scatter(
                x=f["w0"],
                y=f["w1"],
                mode="markers",
                marker={"color": f["feature"], "colorscale": "Viridis", "size": 8},
                text=[f"feature {j}, I={i:.3g}" for j, i in zip(f["feature"], f["importance"])],
                showlegend=False,
            ),
            **rc,
        )
        fig.update_xaxes(range=[-lim, lim], **rc)
        fig.update_yaxes(range=[-lim, lim], scaleanchor=f"x{p + 1 if p else ''}", **rc)
    fig.update_layout(
        height=260 * rows,
        title="Columns W_i of W (m = 2); colour: feature index (importance falls with index)",
    )
    return fig


def _gram_figure(inst: pd.DataFrame, gram: pd.DataFrame, grid: bool) -> go.Figure:
    """WᵀW heatmaps for up to 6 instances spread across densities."""
    shown = _spread(inst, 6)
    fig = make_subplots(
        rows=1, cols=len(shown), subplot_titles=[_label(r, grid) for _, r in shown.iterrows()]
    )
    for p, (_, r) in enumerate(shown.iterrows()):
        g = gram[gram["instance"] == r["instance"]]
        z = g.pivot(index="i", columns="j", values="value").to_numpy()
        fig.add_trace(
            go.Heatmap(
                z=np.round(z, 3),
                zmin=-1,
                zmax=1,
                colorscale="RdBu",
                reversescale=True,
                showscale=p == 0,
            ),
            row=1,
            col=p + 1,
        )
        fig.update_yaxes(autorange="reversed", row=1, col=p + 1)
    fig.update_layout(height=330, title="Gram matrix WᵀW across feature densities")
    return fig


def _dims_figure(inst: pd.DataFrame, feats: pd.DataFrame, grid: bool) -> go.Figure:
    """D* vs 1/(1−S) with the D_i scatter of represented features, and the D_i histogram."""
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.62, 0.38],
        subplot_titles=["D* and D_i vs 1/(1−S)", "D_i of represented features"],
    )
    for rel, part in inst.groupby("relative_importance"):
        fig.add_trace(
            go.Scatter(
                x=part["inv_density"],
                y=part["dstar"],
                mode="lines+markers",
                name="D* = m/‖W‖²" + (f" (r={rel:.2g})" if grid else ""),
            ),
            row=1,
            col=1,
        )
    rep = feats[feats["polytope"] != "not represented"]
    fig.add_trace(
        go.Scatter(
            x=1 / rep["density"],
            y=rep["dim"],
            mode="markers",
            marker={"size": 4, "opacity": 0.5, "color": "black"},
            name="D_i (represented)",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Histogram(x=rep["dim"], xbins={"start": 0, "end": 1.01, "size": 0.01}, name="D_i"),
        row=1,
        col=2,
    )
    _fraction_lines(fig, row=1, col=1)
    for value, _ in _FRACTIONS:
        fig.add_vline(x=value, line_dash="dot", line_color="grey", row=1, col=2)
    fig.update_xaxes(type="log", title_text="1/(1−S)", row=1, col=1)
    fig.update_yaxes(title_text="dimensions per feature", range=[0, 1.1], row=1, col=1)
    fig.update_xaxes(title_text="D_i", row=1, col=2)
    fig.update_layout(height=430, title="Dimensionality: the paper's fractions are dotted")
    return fig


def _phase_figure(phase: pd.DataFrame) -> go.Figure:
    """The last feature's phase over (density, relative importance)."""
    fig = go.Figure()
    for name, color in _PHASE_COLORS.items():
        part = phase[phase["phase"] == name]
        fig.add_trace(
            go.Scatter(
                x=part["density"],
                y=part["relative_importance"],
                mode="markers",
                marker={"symbol": "square", "size": 16, "color": color},
                name=name,
            )
        )
    fig.update_xaxes(type="log", title_text="feature density 1−S", autorange="reversed")
    fig.update_yaxes(type="log", title_text="relative importance of the extra feature")
    fig.update_layout(height=480, title="Phase diagram of the extra (last) feature")
    return fig


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _polytope_table(inst: pd.DataFrame, feats: pd.DataFrame, grid: bool) -> str:
    shown = _spread(inst, 20)
    counts = (
        feats[feats["instance"].isin(shown["instance"])]
        .groupby(["instance", "polytope"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=list(_CLASSES), fill_value=0)
    )
    counts = counts.loc[:, (counts.sum() > 0).to_numpy()]
    dstar = shown.set_index("instance")["dstar"]
    counts.insert(0, "D*", [f"{dstar[i]:.3f}" for i in counts.index])
    labels = {r["instance"]: _label(r, grid) for _, r in shown.iterrows()}
    counts.index = [labels[i] for i in counts.index]
    return _table(counts.reset_index(names="instance"))


def _capacity_html(cap: pd.DataFrame) -> list[str]:
    shown = _spread(cap, 20)
    cols = {
        "sparsity": "S",
        "represented": "represented",
        "mean_abs_cos": "mean |cos|",
        "max_abs_cos": "max |cos|",
        "max_pos_cos": "max cos>0",
        "random_mean_abs_cos": "random E|cos|",
        "jl_epsilon": "JL ε",
        "union_epsilon": "union ε",
        "welch_bound": "Welch",
    }
    frame = shown[list(cols)].rename(columns=cols).copy()
    for c in frame.columns[2:]:
        frame[c] = [f"{v:.3f}" if math.isfinite(v) else "—" for v in frame[c]]
    frame["S"] = [f"{s:.4g}" for s in frame["S"]]
    note = "" if len(shown) == len(cap) else f" ({len(shown)} of {len(cap)} rows shown)"
    items = "".join(f"<li>{html.escape(s)}</li>" for s in shown["sentence"])
    return [
        f"<h3>Capacity: measured interference vs worst-case bounds{note}</h3>",
        "<p>JL ε: the distortion the Johnson–Lindenstrauss lemma guarantees for n points in m "
        "dimensions (— = none below 1); union ε: the |cos| bound n random unit vectors meet by "
        "the union bound; Welch: the least possible max |cos| of n unit vectors in R^m; random "
        "E|cos|: typical |cos| of two random unit vectors. Measured values are over represented "
        "features; antipodal pairs give max |cos| = 1, which the ReLU filters out "
        "(max cos>0 is the interference it cannot).</p>",
        _table(frame),
        f"<ul>{items}</ul>",
    ]


def _overview(events: dict, inst: pd.DataFrame) -> str:
    info = events.get("superposition", {})
    parts = [html.escape(n) for n in events.get("notes", [])]
    replicas = int(info.get("replicas", 1))
    if replicas > 1:
        cells = inst[inst["best"]] if "best" in inst else inst
        stalled = int((inst.groupby("cell")["represented"].nunique() > 1).sum())
        parts.append(
            f"Each of {len(cells)} cells was trained {replicas} times from different "
            f"initialisations; figures and tables show the lowest-loss replica "
            f"({stalled} cells' replicas disagree on how many features they represent)."
        )
        inst = cells
    k = int(inst["superposition"].sum())
    parts.append(
        f"{len(inst)} models of n={info.get('n')}, m={info.get('m')}; {k} represent more "
        f"features than dimensions (‖W_i‖ > {info.get('norm_threshold')})."
    )
    plateau = info.get("dstar_half_plateau") or {}
    if plateau.get("levels"):
        lo, hi = plateau["inv_density"]
        parts.append(
            f"D* is within {plateau['tolerance']} of 1/2 in {plateau['levels']} models, "
            f"at 1/(1−S) from {lo:.3g} to {hi:.3g}."
        )
    return f"<p class='summary'>{' '.join(parts)}</p>"


@section("superposition")
def superposition_section(run: RunDir) -> list[str]:
    """The superposition findings of ``run`` as HTML fragments (figures and tables)."""
    inst, feats = run.table("instances"), run.table("features")
    if inst is None or feats is None:
        return ["<h2>Superposition</h2><p>No whole-run analysis in this run's store yet.</p>"]
    events = run.events()
    grid = (phase := run.table("phase_diagram")) is not None
    info = events.get("superposition", {})
    m = int(info.get("m", 0))
    parts = ["<h2>Superposition</h2>", _overview(events, inst)]
    if "best" in inst and int(info.get("replicas", 1)) > 1:  # keep the best replica per cell
        inst = inst[inst["best"]]
        feats = feats[feats["instance"].isin(inst["instance"])]
    if m == 2:
        parts.append(figure_html(_columns_figure(inst, feats, grid)))
    if (gram := run.table("gram")) is not None:
        parts.append(figure_html(_gram_figure(inst, gram, grid)))
    parts.append(figure_html(_dims_figure(inst, feats, grid)))
    if grid and phase is not None:
        parts.append(figure_html(_phase_figure(phase)))
    parts += ["<h3>Features per polytope class (from D_i)</h3>", _polytope_table(inst, feats, grid)]
    if (cap := run.table("capacity")) is not None:
        parts += _capacity_html(cap[cap["instance"].isin(inst["instance"])])
    return parts
