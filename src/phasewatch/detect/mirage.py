"""Is an emergent jump real or a metric artefact? (Schaeffer et al. 2023, "Are emergent
abilities of large language models a mirage?", NeurIPS; §2 and Fig. 2.)

Schaeffer et al.: if per-token accuracy p improves smoothly with scale, an all-or-nothing
metric on an L-token answer, exact match ≈ p^L, rises sharply, while a per-token metric
such as the token edit distance ≈ L(1 − p) changes linearly in p. This module measures
how jump-like each metric of a base64 ladder is, across model size and across training
steps, and compares measured exact match with the closed form p^L.

Jump share and sharpness of a sequence y_0..y_n at positions x_0 < ... < x_n (log10
parameters across size, the step across training):

    J = max_i |Δy_i| / Σ_j |Δy_j|
    S = max_i (|Δy_i| / Σ_j |Δy_j|) / (Δx_i / Σ_j Δx_j)

J is the share of the total movement carried by the largest interval; S compares each
interval's share of the movement with its share of the x-range (S = 1 for a straight
line, large when one interval carries far more than its width). A metric is *jump-like*
when S >= 2 (one interval changes at least twice as fast as the metric does on average)
and *flat* when its total movement is below ``MIN_MOVE`` (then S is not read).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

METRICS = ("exact", "acc95", "similarity", "char_acc", "logprob")
CONTINUOUS = ("char_acc", "logprob")  # the smooth per-token metrics of the check
LABELS = {
    "exact": "exact match (threshold 1.0)",
    "acc95": "accuracy at similarity 0.95",
    "similarity": "mean normalised similarity",
    "char_acc": "per-character accuracy",
    "logprob": "target log-likelihood (nats/token)",
}
SHARPNESS = 2.0
MIN_MOVE = 0.05  # accuracy units; nats for logprob


def toy_exact(p: Any, length: Any) -> np.ndarray:
    """Exact match of an answer of ``length`` independent tokens, each right with
    probability ``p``: p^L (Schaeffer et al. 2023, Eq. 2)."""
    return np.power(np.asarray(p, dtype=float), np.asarray(length, dtype=float))


def toy_edit_distance(p: Any, length: Any) -> np.ndarray:
    """Expected token edit distance of that answer (substitutions only): L(1 − p)."""
    return np.asarray(length, dtype=float) * (1.0 - np.asarray(p, dtype=float))


def toy_table(lengths: tuple[int, ...] = (1, 4, 8, 16, 32), n: int = 101) -> pd.DataFrame:
    """The closed-form toy on a grid of p in [0, 1]: columns p, L, exact (p^L),
    edit_distance (L(1 − p)) and edit_fraction ((1 − p), the normalised distance)."""
    p = np.linspace(0.0, 1.0, n)
    parts = [
        pd.DataFrame(
            {
                "p": p,
                "L": L,
                "exact": toy_exact(p, L),
                "edit_distance": toy_edit_distance(p, L),
                "edit_fraction": 1.0 - p,
            }
        )
        for L in lengths
    ]
    return pd.concat(parts, ignore_index=True)


def jump_share(values: Any, x: Any = None) -> tuple[float, float, int | None, float]:
    """``(J, S, i, movement)``: jump share, sharpness, the index i of the sharpest interval
    (x_i → x_{i+1}) and the total movement Σ|Δy|; ``x`` defaults to 0, 1, 2, ...
    (NaN, NaN, None, 0 for fewer than 2 values or no movement)."""
    y = np.asarray(values, dtype=float)
    xs = np.arange(y.size, dtype=float) if x is None else np.asarray(x, dtype=float)
    d = np.abs(np.diff(y))
    total = float(d.sum()) if y.size >= 2 else 0.0
    if total == 0.0:
        return float("nan"), float("nan"), None, 0.0
    dx = np.diff(xs)
    rate = (d / total) / (dx / dx.sum())
    i = int(rate.argmax())
    return float(d.max() / total), float(rate[i]), i, total


def final_by_size(metrics: pd.DataFrame, ladder: pd.DataFrame) -> pd.DataFrame:
    """One row per member (by parameters, smallest first): member, params,
    params_non_embedding and each metric at the last logged step."""
    last = metrics[metrics["step"] == metrics["step"].max()].set_index("key")["value"]
    rows = []
    for _, m in ladder.sort_values("params", kind="stable").iterrows():
        row = {k: m[k] for k in ("member", "params", "params_non_embedding")}
        row |= {k: float(last.get(f"{k}/{m['member']}", np.nan)) for k in METRICS}
        rows.append(row)
    return pd.DataFrame(rows)


def predicted_exact(samples: pd.DataFrame, by_size: pd.DataFrame) -> pd.Series:
    """Per member, the mean over held-out samples of p^L_i, with p the member's pooled
    per-character accuracy and L_i each sample's target length (the toy on the data)."""
    out = {}
    for _, row in by_size.iterrows():
        lengths = samples.loc[samples["member"] == row["member"], "target_len"]
        out[row["member"]] = float(toy_exact(row["char_acc"], lengths).mean())
    return pd.Series(out)


def _jump_rows(axis: str, member: str, frame: pd.DataFrame, x: str, pos: Any) -> list[dict]:
    rows = []
    for k in METRICS:
        if k not in frame:
            continue
        J, S, i, move = jump_share(frame[k].to_numpy(), pos)
        rows.append(
            {
                "axis": axis,
                "member": member,
                "metric": k,
                "jump_share": J,
                "sharpness": S,
                "movement": move,
                "rise": float(frame[k].iloc[-1] - frame[k].iloc[0]),
                "jump_from": None if i is None else frame[x].iloc[i],
                "jump_to": None if i is None else frame[x].iloc[i + 1],
                "flat": move < MIN_MOVE,
                "jump_like": bool(move >= MIN_MOVE and S >= SHARPNESS),
            }
        )
    return rows


def jumps(metrics: pd.DataFrame, by_size: pd.DataFrame) -> pd.DataFrame:
    """Jump share and sharpness of every metric across size (final step; x = log10
    parameters) and across training steps (every member; x = step)."""
    rows = _jump_rows("size", "all", by_size, "member", np.log10(by_size["params"]))
    for member in by_size["member"]:
        keys = {f"{k}/{member}": k for k in METRICS}
        sub = metrics[metrics["key"].isin(keys)]
        wide = sub.pivot_table(index="step", columns="key", values="value").rename(columns=keys)
        wide = wide.reset_index()
        rows += _jump_rows("steps", member, wide, "step", wide["step"])
    return pd.DataFrame(rows)


def verdict(jump_table: pd.DataFrame, axis: str, member: str = "all") -> str:
    """The Schaeffer-style check on one axis, stated from the jump table."""
    t = jump_table[(jump_table["axis"] == axis) & (jump_table["member"] == member)]
    t = t.set_index("metric")
    where = "across model size" if axis == "size" else f"over training steps of {member}"
    ex = t.loc["exact"]

    def describe(k: str) -> str:
        """One sentence on how metric ``k`` moves along the axis."""
        r = t.loc[k]
        if r["flat"]:
            return f"{LABELS[k]} is flat (moves {r['movement']:.3g})"
        return (
            f"{LABELS[k]} moves {r['rise']:+.3g}, fastest between {r['jump_from']} and "
            f"{r['jump_to']} ({r['sharpness']:.1f}× its average rate, "
            f"{100 * r['jump_share']:.0f}% of its movement)"
        )

    parts = [describe(k) for k in ("exact", *CONTINUOUS)]
    jumping = [k for k in CONTINUOUS if t.loc[k, "jump_like"]]
    if not ex["jump_like"]:
        ans = "exact match does not jump"
    elif jumping:
        names = ", ".join(LABELS[k] for k in jumping)
        ans = f"exact match jumps, and so does {names}: not only a metric artefact"
    else:
        ans = "exact match jumps where the continuous metrics are smooth (a mirage in the sense of Schaeffer et al. 2023)"  # noqa: E501
    return f"{where[0].upper()}{where[1:]}: {'; '.join(parts)}. Verdict: {ans}."


def analyse(metrics: pd.DataFrame, ladder: pd.DataFrame, samples: pd.DataFrame) -> dict[str, Any]:
    """The whole mirage analysis of a ladder run.

    Args:
        metrics: the run's tidy metrics (step, key, value).
        ladder: ``tables/ladder.parquet`` (member, params, ...), smallest first.
        samples: ``tables/final_samples.parquet`` (member, target_len, ...).

    Returns:
        ``{"by_size", "jumps", "toy"}`` DataFrames and ``statements`` (list of str): the
        verdict across size, the verdict over steps of the largest member, and how well
        p^L predicts exact match.
    """
    by_size = final_by_size(metrics, ladder)
    by_size["predicted_exact"] = by_size["member"].map(predicted_exact(samples, by_size))
    table = jumps(metrics, by_size)
    err = (by_size["predicted_exact"] - by_size["exact"]).abs()
    worst = by_size.loc[err.idxmax()]
    toy = (
        f"The toy p^L, with each member's per-character accuracy p and the held-out answer "
        f"lengths L (mean {samples['target_len'].mean():.1f} characters), predicts exact "
        f"match within {err.max():.3f} at every size (worst: {worst['member']}, predicted "
        f"{worst['predicted_exact']:.3f}, measured {worst['exact']:.3f})."
    )
    largest = by_size["member"].iloc[-1]
    statements = [verdict(table, "size"), verdict(table, "steps", largest), toy]
    return {"by_size": by_size, "jumps": table, "toy": toy_table(), "statements": statements}
