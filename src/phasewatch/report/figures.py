"""Figures from a tidy metrics table: interactive (plotly) and static PNG (matplotlib).

Panels are chosen from the metric keys alone: losses (``*/loss``, ``*_loss``),
accuracies (``*/acc``), other scalars, and heatmaps for indexed families
(``fourier/embed_norm/<k>``). Vertical lines mark the onsets of ``events.json``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
from plotly.subplots import make_subplots  # noqa: E402

from phasewatch.store.atomic import atomic_path  # noqa: E402

_INDEXED = re.compile(r"^(.*)/(\d+)$")


def panels(keys: list[str]) -> dict[str, list[str]]:
    """Group scalar metric keys into panels: ``loss``, ``accuracy``, one per family of
    three or more keys sharing a parent (``heads/copying/L1H2`` → ``heads/copying``),
    and one per other key."""
    out: dict[str, list[str]] = {"loss": [], "accuracy": []}
    scalar = [k for k in sorted(keys) if not _INDEXED.match(k)]
    parents: dict[str, int] = {}
    for k in scalar:
        parents[k.rpartition("/")[0]] = parents.get(k.rpartition("/")[0], 0) + 1
    for k in scalar:
        parent = k.rpartition("/")[0]
        if k.endswith("/loss") or k.endswith("_loss"):
            out["loss"].append(k)
        elif k.endswith("/acc"):
            out["accuracy"].append(k)
        elif parent and parents[parent] >= 3:
            out.setdefault(parent, []).append(k)
        else:
            out[k] = [k]
    return {name: ks for name, ks in out.items() if ks}


def indexed_families(keys: list[str]) -> dict[str, list[tuple[int, str]]]:
    """``{"fourier/embed_norm": [(1, "fourier/embed_norm/1"), ...]}`` for indexed keys."""
    fam: dict[str, list[tuple[int, str]]] = {}
    for k in keys:
        if m := _INDEXED.match(k):
            fam.setdefault(m.group(1), []).append((int(m.group(2)), k))
    return {f: sorted(v) for f, v in fam.items()}


def _wide(metrics: pd.DataFrame) -> pd.DataFrame:
    wide = metrics.pivot_table(index="step", columns="key", values="value", aggfunc="last")
    return wide[wide.index > 0]  # log-step axis


def _onset_lines(onsets: dict) -> list[tuple[str, int]]:
    return [(n, ev["step"]) for n, ev in onsets.items() if ev.get("step")]


def curves_figure(metrics: pd.DataFrame, onsets: dict) -> go.Figure:
    """All scalar panels on a log-step axis, with onset lines."""
    wide = _wide(metrics)
    groups = panels(list(wide.columns))
    n = len(groups)
    cols = 2
    rows = (n + cols - 1) // cols
    spacing = min(0.14, 0.5 / max(rows - 1, 1))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(groups), vertical_spacing=spacing)
    for i, (name, keys) in enumerate(groups.items()):
        r, c = i // cols + 1, i % cols + 1
        for k in keys:
            s = wide[k].dropna()
            fig.add_trace(go.Scatter(x=s.index, y=s.values, name=k, mode="lines"), row=r, col=c)
        fig.update_xaxes(type="log", title_text="step", row=r, col=c)
        if name == "loss":
            fig.update_yaxes(type="log", title_text="nats", row=r, col=c)
        for label, step in _onset_lines(onsets):
            fig.add_vline(x=step, line_dash="dot", line_color="grey", row=r, col=c)
            if i == 0:  # label the onsets once; annotations on a log axis take log10(x)
                fig.add_annotation(
                    x=math.log10(step), y=1, yref="y domain", xref="x", text=label,
                    textangle=-90, showarrow=False, xanchor="right", yanchor="top",
                    font={"size": 9, "color": "grey"},
                )  # fmt: skip
    fig.update_layout(
        height=330 * rows, title="Training curves (dotted: onsets)", legend={"orientation": "h"}
    )
    return fig


MAX_HEATMAP_ROWS = 256  # indices drawn per interactive heatmap (the PNG shows them all)


def _thin(items: list[tuple[int, str]], limit: int = MAX_HEATMAP_ROWS) -> list[tuple[int, str]]:
    """At most ``limit`` evenly spaced entries of ``items`` (first and last kept)."""
    if len(items) <= limit:
        return items
    picks = sorted({round(i * (len(items) - 1) / (limit - 1)) for i in range(limit)})
    return [items[i] for i in picks]


def heatmap_figures(metrics: pd.DataFrame) -> list[go.Figure]:
    """One interactive heatmap (index × step) per indexed family.

    Families with more than :data:`MAX_HEATMAP_ROWS` indices (superposition's ``dim/<i>``
    has one per feature and instance: 4,000 in the geometry preset) show an evenly spaced
    subset, said in the title, and values are sent as float32 (plotly encodes arrays as
    binary): the full family made an 8 MB report; the PNG in ``figures/`` and
    metrics.parquet keep it all.
    """
    wide = _wide(metrics)
    figs = []
    for family, every in indexed_families(list(wide.columns)).items():
        items = _thin(every)
        z = wide[[k for _, k in items]].T
        title = family if len(items) == len(every) else f"{family} ({len(items)} of {len(every)})"
        fig = go.Figure(
            go.Heatmap(
                x=list(z.columns),
                y=[i for i, _ in items],
                z=z.to_numpy(np.float32),
                colorscale="Viridis",
            )
        )
        fig.update_xaxes(type="log", title_text="step")
        fig.update_yaxes(title_text="index (e.g. frequency k)")
        fig.update_layout(title=title, height=420)
        figs.append(fig)
    return figs


def save_pngs(metrics: pd.DataFrame, onsets: dict, out_dir: Path) -> list[Path]:
    """Static figures for papers: ``curves.png`` and one heatmap PNG per indexed family."""
    out_dir.mkdir(exist_ok=True)
    wide = _wide(metrics)
    groups = panels(list(wide.columns))
    n = len(groups)
    cols = 2
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(11, 3.2 * rows), squeeze=False)
    for ax, (name, keys) in zip(axes.flat, groups.items()):
        for k in keys:
            s = wide[k].dropna()
            ax.plot(s.index, s.values, label=k)
        ax.set_xscale("log")
        if name == "loss":
            ax.set_yscale("log")
        for _, step in _onset_lines(onsets):
            ax.axvline(step, ls=":", c="grey")
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    paths = [out_dir / "curves.png"]
    with atomic_path(paths[0]) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    for family, items in indexed_families(list(wide.columns)).items():
        z = wide[[k for _, k in items]].T
        fig, ax = plt.subplots(figsize=(9, 3.5))
        mesh = ax.pcolormesh(z.columns, [i for i, _ in items], z.values, shading="nearest")
        ax.set_xscale("log")
        ax.set_xlabel("step")
        ax.set_title(family)
        fig.colorbar(mesh, ax=ax)
        fig.tight_layout()
        path = out_dir / (family.replace("/", "_") + ".png")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        plt.close(fig)
        paths.append(path)
    return paths
