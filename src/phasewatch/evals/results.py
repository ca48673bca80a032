"""Base64Bench results as tables: per-sample scores from an inspect log, the threshold
sweep and per-type accuracy (pandas; no figures here).

Pass rule at threshold t (Base64Bench): a valid answer (status ``ok``) with similarity
>= t. Samples without a score (a model error inspect recorded) count as failed with
status ``error``, so the denominators are always every sample that was run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phasewatch.config import require
from phasewatch.store import atomic

SAMPLE_COLUMNS = [
    "id",
    "type",
    "direction",
    "length",
    "similarity",
    "status",
    "passed",
    "answer",
]


def default_thresholds() -> list[float]:
    """0, 0.1, ..., 0.8, then 0.9 to 1.0 in steps of 0.005 (30 thresholds): fine near 1,
    where Base64Bench separates models."""
    coarse = np.round(np.arange(0, 9) / 10, 3)
    fine = np.round(0.9 + np.arange(0, 21) * 0.005, 3)
    return [float(t) for t in np.concatenate([coarse, fine])]


def parse_thresholds(text: str | None) -> list[float]:
    """``"1,0.95,0.9"`` → sorted floats; None → :func:`default_thresholds`.

    Raises:
        ConfigError: naming ``thresholds`` if a value is not a number in [0, 1].
    """
    if text is None:
        return default_thresholds()
    try:
        values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        values = []
    ok = bool(values) and all(0.0 <= v <= 1.0 for v in values)
    require(ok, "thresholds", "comma-separated numbers in [0, 1]", text)
    return sorted(set(values))


def samples_from_log(log: Any) -> pd.DataFrame:
    """One row per sample of an inspect ``EvalLog`` (read with ``read_eval_log``).

    Columns: id, type, direction, length, similarity (float in [0, 1]), status, passed
    (at the task's threshold), answer.
    """
    rows = []
    for s in log.samples or []:
        meta = s.metadata or {}
        score = next(iter((s.scores or {}).values()), None)
        smeta = (score.metadata or {}) if score is not None else {}
        rows.append(
            {
                "id": str(s.id),
                "type": meta.get("type", "unknown"),
                "direction": meta.get("direction", "unknown"),
                "length": int(meta.get("length", 0)),
                "similarity": float(score.value) if score is not None else 0.0,
                "status": smeta.get("status", "error"),
                "passed": bool(smeta.get("passed", False)),
                "answer": (score.answer or "") if score is not None else "",
            }
        )
    return pd.DataFrame(rows, columns=SAMPLE_COLUMNS)


def accuracy(samples: pd.DataFrame, threshold: float) -> float:
    """Fraction of ``samples`` passing at ``threshold`` (NaN for no samples)."""
    if samples.empty:
        return float("nan")
    passed = (samples["status"] == "ok") & (samples["similarity"] >= threshold)
    return float(passed.mean())


def sweep(samples: pd.DataFrame, thresholds: list[float]) -> pd.DataFrame:
    """Accuracy at each threshold for all samples and per direction.

    Returns:
        Long table: threshold, direction (``all``, ``encode``, ``decode``), n, accuracy.
    """
    groups = [("all", samples)] + [(d, g) for d, g in samples.groupby("direction", sort=True)]
    rows = [
        {"threshold": t, "direction": d, "n": len(g), "accuracy": accuracy(g, t)}
        for d, g in groups
        for t in thresholds
    ]
    return pd.DataFrame(rows)


def per_type(samples: pd.DataFrame, thresholds: tuple[float, ...] = (1.0, 0.95)) -> pd.DataFrame:
    """Per text type and direction: n, mean similarity, accuracy at ``thresholds``, failed.

    Rows are sorted by accuracy at the first threshold (best first), then type.
    """
    rows = []
    for (typ, d), g in samples.groupby(["type", "direction"], sort=True):
        row: dict[str, Any] = {"type": typ, "direction": d, "n": len(g)}
        row["mean_similarity"] = float(g["similarity"].mean())
        for t in thresholds:
            row[f"acc@{t:g}"] = accuracy(g, t)
        row["failed"] = int((g["status"] != "ok").sum())
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    first = f"acc@{thresholds[0]:g}"
    return df.sort_values([first, "type"], ascending=[False, True]).reset_index(drop=True)


def status_counts(samples: pd.DataFrame) -> dict[str, int]:
    """Number of samples per status (``ok``, ``empty``, ``refusal``, ...)."""
    return {str(k): int(v) for k, v in samples["status"].value_counts().sort_index().items()}


def write_tables(out: Path, tables: dict[str, pd.DataFrame]) -> list[Path]:
    """Each table as ``<name>.parquet`` and ``<name>.csv`` in ``out``."""
    paths = []
    for name, df in tables.items():
        atomic.write_parquet(out / f"{name}.parquet", df)
        atomic.write_text(out / f"{name}.csv", df.to_csv(index=False))
        paths += [out / f"{name}.parquet", out / f"{name}.csv"]
    return paths
