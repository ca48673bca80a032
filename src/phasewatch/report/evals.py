"""Figures, ``summary.md`` and ``report.html`` of a Base64Bench evaluation folder, built
only from its tables (:mod:`phasewatch.evals.results`)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
from plotly.offline import get_plotlyjs  # noqa: E402

from phasewatch.report.registry import figure_html  # noqa: E402
from phasewatch.store.atomic import atomic_path, write_text  # noqa: E402

# Published accuracy at threshold 1.0 (Base64Bench 2025, all 3,400 samples), for context.
PUBLISHED = (
    ("Claude 3.7 Sonnet", 0.759),
    ("Claude Sonnet 4", 0.737),
    ("GPT-5", 0.658),
    ("GPT-4o", 0.625),
    ("GPT-4o-mini", 0.253),
    ("Llama-3.1-8B", 0.004),
)
_COLORS = {"all": "#222222", "encode": "#4c78a8", "decode": "#e45756"}


def sweep_figure(sweep: pd.DataFrame) -> go.Figure:
    """Accuracy vs similarity threshold, one line per direction (and all samples)."""
    fig = go.Figure()
    for d, g in sweep.groupby("direction", sort=False):
        name, color = f"{d} (n={g['n'].iloc[0]})", _COLORS.get(d)
        trace = go.Scatter(x=g["threshold"], y=g["accuracy"], mode="lines+markers", name=name)
        fig.add_trace(trace.update(line={"color": color}))
    fig.update_layout(
        height=380,
        title="Accuracy vs similarity threshold (pass: valid answer, similarity ≥ threshold)",
        xaxis_title="threshold",
        yaxis_title="accuracy",
        yaxis_range=[-0.02, 1.02],
    )
    return fig


def per_type_figure(per_type: pd.DataFrame, column: str = "acc@1") -> go.Figure:
    """Accuracy per text type at one threshold, bars per direction."""
    order = per_type.groupby("type")[column].mean().sort_values(ascending=False).index
    fig = go.Figure()
    for d, g in per_type.groupby("direction", sort=True):
        g = g.set_index("type").reindex(order)
        fig.add_trace(go.Bar(x=list(order), y=g[column], name=d, marker_color=_COLORS.get(d)))
    fig.update_layout(
        height=420, barmode="group", title=f"Accuracy per text type ({column})",
        yaxis_title="accuracy", yaxis_range=[0, 1.02], xaxis_tickangle=-60,
    )  # fmt: skip
    return fig


def save_pngs(out: Path, sweep: pd.DataFrame, per_type: pd.DataFrame) -> list[Path]:
    """``sweep.png`` and ``per_type.png`` (matplotlib) in ``out``."""
    out.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    for d, g in sweep.groupby("direction", sort=False):
        ax.plot(g["threshold"], g["accuracy"], marker=".", label=d, color=_COLORS.get(d))
    ax.set(xlabel="similarity threshold", ylabel="accuracy", ylim=(-0.02, 1.02))
    ax.set_title("Base64Bench: accuracy vs threshold")
    ax.legend()
    paths = [out / "sweep.png", out / "per_type.png"]
    save_png(fig, paths[0])
    fig, ax = plt.subplots(figsize=(12, 4.5))
    if not per_type.empty:
        wide = per_type.pivot_table(index="type", columns="direction", values="acc@1")
        wide = wide.loc[wide.mean(axis=1).sort_values(ascending=False).index]
        wide.plot.bar(ax=ax, color=[_COLORS.get(c, "grey") for c in wide.columns], width=0.8)
        ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
    ax.set(ylabel="accuracy at threshold 1.0", ylim=(0, 1.02), xlabel="")
    ax.set_title("Base64Bench: accuracy per text type (threshold 1.0)")
    save_png(fig, paths[1])
    return paths


def save_png(fig: plt.Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` as a PNG atomically (creating its folder), close it, return
    ``path``; the evaluations' figures all go through here."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _pct(x: Any) -> str:
    return "—" if x is None or x != x else f"{100 * x:.1f}%"


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table (floats in [0, 1] shown to 3 decimals)."""
    cols = list(df.columns)
    cell = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(False)]
    return "\n".join(lines)


def summary_markdown(info: dict[str, Any], per_type: pd.DataFrame) -> str:
    """The evaluation in a few lines: model, samples, headline accuracies, failures, the
    published numbers for context, and the per-type table."""
    acc = info["accuracy"]
    fails = {k: v for k, v in info["status_counts"].items() if k != "ok"}
    lines = [
        f"# Base64Bench: {info['model']}",
        "",
        f"{info['samples']:,} samples of {info['task']}"
        + (f" (--limit {info['limit']})" if info["limit"] else "")
        + f". Accuracy at "
        f"threshold 1.0: **{_pct(acc.get('1'))}**; at 0.95: {_pct(acc.get('0.95'))}; at 0.9: "
        f"{_pct(acc.get('0.9'))}. Mean similarity {info['mean_similarity']:.3f}.",
        "",
        "Failed before comparison (scored 0, counted): "
        + (", ".join(f"{k} {v}" for k, v in fails.items()) if fails else "none")
        + ".",
        "",
        "Published accuracy at threshold 1.0 on all 3,400 samples (Base64Bench 2025): "
        + ", ".join(f"{name} {_pct(v)}" for name, v in PUBLISHED)
        + ".",
        "",
        "## Per type and direction",
        "",
        markdown_table(per_type) if not per_type.empty else "(no samples)",
        "",
    ]
    return "\n".join(lines)


def write_eval_report(
    path: Path,
    info: dict[str, Any],
    sweep: pd.DataFrame,
    per_type: pd.DataFrame,
) -> Path:
    """Write ``figures/*.png``, ``summary.md`` and a self-contained ``report.html``."""
    save_pngs(path / "figures", sweep, per_type)
    md = summary_markdown(info, per_type)
    write_text(path / "summary.md", md)
    body = [
        f"<h1>Base64Bench: {html.escape(info['model'])}</h1>",
        f"<pre style='white-space:pre-wrap'>{html.escape(md.split('## Per type')[0])}</pre>",
        figure_html(sweep_figure(sweep)),
    ]
    if not per_type.empty:
        body += [figure_html(per_type_figure(per_type)), per_type.to_html(index=False, border=0)]
    doc = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Base64Bench</title>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head>"
        f"<body style='font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto'>"
        f"{''.join(body)}</body></html>"
    )
    write_text(path / "report.html", doc)
    return path / "report.html"
