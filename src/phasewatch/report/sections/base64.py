"""Report section of ``base64-ladder`` runs and the ``phasewatch mirage`` outputs, built
from the run store only (metrics, ``tables/ladder.parquet``, ``tables/final_samples.parquet``).

Figures: each metric against parameters (log axis) at the end of training, with the toy
p^L prediction beside measured exact match; each metric against training steps, one line
per member; the closed-form toy (p^L against L(1 − p)) of Schaeffer et al. (2023).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
from plotly.offline import get_plotlyjs  # noqa: E402
from plotly.subplots import make_subplots  # noqa: E402

from phasewatch.detect import mirage as M  # noqa: E402
from phasewatch.errors import StoreError  # noqa: E402
from phasewatch.report.registry import figure_html, section  # noqa: E402
from phasewatch.store import RunDir, atomic  # noqa: E402
from phasewatch.store.atomic import atomic_path  # noqa: E402


def analyse_run(run: RunDir) -> dict[str, Any]:
    """:func:`phasewatch.detect.mirage.analyse` on a ladder run's store.

    Raises:
        StoreError: if the run is not a finished base64-ladder run.
    """
    ladder, samples = run.table("ladder"), run.table("final_samples")
    if run.config().get("phenomenon") != "base64-ladder" or ladder is None or samples is None:
        raise StoreError(
            f"{run.path}: not a finished base64-ladder run (needs tables/ladder.parquet and "
            "tables/final_samples.parquet); allowed: a folder of `phasewatch run base64-ladder`"
        )
    return M.analyse(run.metrics(), ladder, samples)


def size_figure(by_size: pd.DataFrame) -> go.Figure:
    """Each metric vs parameters (log axis), final step; exact match with p^L beside it."""
    fig = make_subplots(rows=1, cols=len(M.METRICS), subplot_titles=list(M.METRICS))
    for col, k in enumerate(M.METRICS, start=1):
        x, names = by_size["params"], by_size["member"]
        fig.add_trace(
            go.Scatter(x=x, y=by_size[k], mode="lines+markers", text=names, name=k),
            row=1, col=col,
        )  # fmt: skip
        if k == "exact":
            toy = go.Scatter(x=x, y=by_size["predicted_exact"], mode="lines", name="p^L (toy)")
            fig.add_trace(toy.update(line={"dash": "dot"}), row=1, col=col)
        fig.update_xaxes(type="log", title_text="parameters", row=1, col=col)
    fig.update_layout(height=360, title="Metrics vs parameters at the end of training")
    return fig


def steps_figure(metrics: pd.DataFrame, members: list[str]) -> go.Figure:
    """Each metric vs training step, one line per member."""
    fig = make_subplots(rows=1, cols=len(M.METRICS), subplot_titles=list(M.METRICS))
    for col, k in enumerate(M.METRICS, start=1):
        for member in members:
            s = metrics[metrics["key"] == f"{k}/{member}"].sort_values("step")
            trace = go.Scatter(x=s["step"], y=s["value"], mode="lines", name=member)
            fig.add_trace(trace.update(legendgroup=member, showlegend=col == 1), row=1, col=col)
        fig.update_xaxes(title_text="step", row=1, col=col)
    fig.update_layout(height=360, title="Metrics vs training step (one line per member)")
    return fig


def toy_figure(toy: pd.DataFrame) -> go.Figure:
    """p^L (exact match) and L(1 − p) (edit distance) against per-token accuracy p."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["exact match p^L", "edit distance L(1−p)"])
    for L, g in toy.groupby("L"):
        for col, y in ((1, "exact"), (2, "edit_distance")):
            trace = go.Scatter(x=g["p"], y=g[y], mode="lines", name=f"L={L}", legendgroup=str(L))
            fig.add_trace(trace.update(showlegend=col == 1), row=1, col=col)
    fig.update_xaxes(title_text="per-token accuracy p")
    fig.update_layout(height=340, title="Closed-form toy (Schaeffer et al. 2023)")
    return fig


def save_pngs(out: Path, result: dict[str, Any], metrics: pd.DataFrame) -> list[Path]:
    """``mirage_size.png``, ``mirage_steps.png`` and ``mirage_toy.png`` (matplotlib)."""
    out.mkdir(parents=True, exist_ok=True)
    by_size, toy = result["by_size"], result["toy"]
    paths = [out / f"mirage_{n}.png" for n in ("size", "steps", "toy")]
    fig, axes = plt.subplots(1, len(M.METRICS), figsize=(17, 3.4))
    for ax, k in zip(axes, M.METRICS):
        ax.plot(by_size["params"], by_size[k], marker="o", label="measured")
        if k == "exact":
            ax.plot(by_size["params"], by_size["predicted_exact"], ls=":", label="p^L")
            ax.legend(fontsize=7)
        ax.set(xscale="log", xlabel="parameters", title=k)
        ax.xaxis.set_minor_formatter(NullFormatter())
    _save(fig, paths[0])
    fig, axes = plt.subplots(1, len(M.METRICS), figsize=(17, 3.4))
    for ax, k in zip(axes, M.METRICS):
        for member in by_size["member"]:
            s = metrics[metrics["key"] == f"{k}/{member}"].sort_values("step")
            ax.plot(s["step"], s["value"], label=member)
        ax.set(xlabel="step", title=k)
    axes[0].legend(fontsize=7)
    _save(fig, paths[1])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for L, g in toy.groupby("L"):
        axes[0].plot(g["p"], g["exact"], label=f"L={L}")
        axes[1].plot(g["p"], g["edit_distance"], label=f"L={L}")
    axes[0].set(xlabel="per-token accuracy p", title="exact match p^L")
    axes[1].set(xlabel="per-token accuracy p", title="edit distance L(1-p)")
    axes[0].legend(fontsize=7)
    _save(fig, paths[2])
    return paths


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _fragments(run: RunDir, result: dict[str, Any]) -> list[str]:
    metrics = run.metrics()
    members = list(result["by_size"]["member"])
    sentences = "".join(f"<li>{html.escape(s)}</li>" for s in result["statements"])
    table = result["by_size"].round(4).to_html(index=False, border=0)
    return [
        f"<h3>Schaeffer-style check</h3><ul>{sentences}</ul>",
        table,
        figure_html(size_figure(result["by_size"])),
        figure_html(steps_figure(metrics, members)),
        figure_html(toy_figure(result["toy"])),
    ]


def write_mirage(run: RunDir) -> tuple[Path, dict[str, Any]]:
    """Write ``<run>/mirage/``: mirage.json (statements), by_size/jumps/toy CSVs, PNGs and
    mirage.html; return the folder and the analysis.

    Raises:
        StoreError: if the run is not a finished base64-ladder run.
    """
    result = analyse_run(run)
    out = run.path / "mirage"
    out.mkdir(exist_ok=True)
    for name in ("by_size", "jumps", "toy"):
        atomic.write_text(out / f"{name}.csv", result[name].to_csv(index=False))
    atomic.write_json(out / "mirage.json", {"statements": result["statements"]})
    save_pngs(out / "figures", result, run.metrics())
    doc = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>mirage</title>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head>"
        "<body style='font-family:system-ui,sans-serif;max-width:1300px;margin:2em auto'>"
        f"<h1>Emergence or mirage? {html.escape(run.id)}</h1>"
        f"{''.join(_fragments(run, result))}</body></html>"
    )
    atomic.write_text(out / "mirage.html", doc)
    return out, result


@section("base64-ladder")
def ladder_section(run: RunDir) -> list[str]:
    """Member table with final metrics, the largest-vs-smallest check and the mirage
    analysis (statements and figures)."""
    ladder = run.events().get("ladder", {})
    if run.table("ladder") is None:
        return []
    beats = ladder.get("largest_beats_smallest", {})
    ok = ladder.get("all_metrics_better")
    head = (
        f"<p>Largest member {html.escape(str(ladder.get('largest')))} beats the smallest "
        f"{html.escape(str(ladder.get('smallest')))} on every metric: "
        f"<b>{'yes' if ok else 'no'}</b> "
        f"({html.escape(', '.join(f'{k}: {v}' for k, v in beats.items()))}). "
        f"Hugging Face export of the largest member: <code>hf/</code>.</p>"
    )
    return ["<h2>Base64 scale ladder</h2>", head, *_fragments(run, analyse_run(run))]
