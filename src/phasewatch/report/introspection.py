"""Figures and ``summary.md`` of thought-injection sweeps (over layers, scales or models)
and of activation patching, built only from their tables
(:mod:`phasewatch.evals.introspection_sweep`, :mod:`phasewatch.evals.patching`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from phasewatch.report.evals import markdown_table, save_png  # noqa: E402
from phasewatch.store.atomic import write_text  # noqa: E402

_X = {"layers": ("layer", "injection layer", False), "scale": ("scale", "scale", True),
      "models": ("parameters", "parameters", True)}  # fmt: skip
_COLUMNS = ["model", "parameters", "layer", "scale", "predictions", "accuracy", "ci95",
            "p_value", "mean_p_correct", "mean_p_correct_in_digits"]  # fmt: skip


def sweep_png(path: Path, sweep: pd.DataFrame, kind: str) -> Path:
    """Accuracy (Clopper–Pearson 95% band) and the smooth metrics against the swept
    variable; the dashed line is chance (1/5)."""
    col, label, log = _X[kind]
    df = sweep.sort_values(col)
    x = df[col].to_numpy()
    low, high = zip(*df["ci95"]) if len(df) else ((), ())
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.fill_between(x, low, high, color="#4c78a8", alpha=0.2, label="accuracy 95% CI")
    ax.plot(x, df["accuracy"], "o-", color="#4c78a8", label="accuracy (argmax digit)")
    ax.plot(x, df["mean_p_correct_in_digits"], "s--", color="#e45756",
            label="P(correct | digits) (smooth)")  # fmt: skip
    ax.plot(x, df["mean_p_correct"], "^:", color="#54a24b", label="P(correct digit) (smooth)")
    ax.axhline(0.2, color="grey", ls="--", lw=1, label="chance")
    if kind == "models":
        for xi, yi, name in zip(x, df["accuracy"], df["model"]):
            ax.annotate(str(name)[-20:], (xi, yi), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")  # fmt: skip
    if log:
        ax.set_xscale("log")
    ax.set(xlabel=label, ylabel="accuracy / probability", ylim=(0, 1.02))
    ax.set_title(f"Thought-injection localization vs {label}")
    ax.legend(fontsize=7, loc="upper right")
    return save_png(fig, path)


def write_sweep_report(path: Path, info: dict[str, Any], sweep: pd.DataFrame) -> Path:
    """``figures/sweep_<kind>.png`` and ``summary.md`` of a sweep folder."""
    kind = info["sweep"]
    sweep_png(path / "figures" / f"sweep_{kind}.png", sweep, kind)
    cols = [c for c in _COLUMNS if c in sweep.columns]
    table = sweep[cols].assign(ci95=[f"[{a:.3f}, {b:.3f}]" for a, b in sweep["ci95"]])
    best = sweep.loc[sweep["accuracy"].idxmax()]
    lines = [
        f"# Thought-injection localization: {kind} sweep",
        "",
        f"{info['trials']} trials × 5 predictions per setting (seed {info['seed']}); chance 20%. "
        f"Best: {best['accuracy']:.1%} [{best['ci95'][0]:.1%}, {best['ci95'][1]:.1%}] at "
        f"{_X[kind][0]} {best[_X[kind][0]]:g} (p = {best['p_value']:.3g}).",
        "",
        f"![sweep](figures/sweep_{kind}.png)",
        "",
        markdown_table(table),
        "",
    ]
    write_text(path / "summary.md", "\n".join(lines))
    return path / "summary.md"


def patching_png(path: Path, effects: pd.DataFrame, inj_layer: int) -> Path:
    """Normalised patching effect per layer, one line per position group; the dotted line
    marks the injection layer."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for group, g in effects.groupby("group", sort=False):
        ax.plot(g["layer"], g["effect"], "o-", label=group, ms=3)
    ax.axvline(inj_layer, color="grey", ls=":", lw=1, label="injection layer")
    ax.axhline(0, color="black", lw=0.5)
    ax.set(xlabel="patched layer", ylabel="normalised effect on logit(1) − logit(2)")
    ax.set_title("Two-sentence localization: activation patching (clean → corrupted)")
    ax.legend(fontsize=7)
    return save_png(fig, path)


def write_patching_report(path: Path, info: dict[str, Any], effects: pd.DataFrame) -> Path:
    """``figures/patching.png`` and ``summary.md`` of a patching folder."""
    patching_png(path / "figures" / "patching.png", effects, info["layer"])
    wide = effects.pivot_table(index="layer", columns="group", values="effect").reset_index()
    lines = [
        f"# Two-sentence localization with activation patching: {info['model']}",
        "",
        f"Injection at layer {info['layer']}/{info['n_layers']}, scale {info['scale']:g}, "
        f"{info['trials']} trials. Unpatched accuracy (clean LD > 0, corrupted LD < 0): "
        f"{info['accuracy']:.1%} [{info['ci95'][0]:.1%}, {info['ci95'][1]:.1%}], chance 50%, "
        f"p = {info['p_value']:.3g}; mean LD clean {info['mean_ld_clean']:+.3f}, corrupted "
        f"{info['mean_ld_corrupt']:+.3f}.",
        "",
        "![patching](figures/patching.png)",
        "",
        "Normalised effect per patched layer and position group:",
        "",
        markdown_table(wide),
        "",
    ]
    write_text(path / "summary.md", "\n".join(lines))
    return path / "summary.md"
