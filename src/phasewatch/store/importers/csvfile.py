"""Metrics from a CSV file: tidy (``step,key,value``) or wide (a step column, one column per
key).

Documented shapes:

- **tidy**: columns ``step``, ``key`` and ``value`` (any order; other columns such as
  ``timestamp`` or ``run_id`` are ignored). MLflow's metric history
  (``MlflowClient().get_metric_history`` rows ``key, value, timestamp, step`` written with
  ``pandas.DataFrame.to_csv``) has this shape. A ``run_id`` column with more than one run
  is refused (one run per file).
- **wide**: a step column — the first of ``step``, ``_step``, ``Step``, ``global_step`` —
  and one column per key. Weights & Biases' run history export (``run.history()`` or the
  "Export CSV" of a run's table) has ``_step`` plus one column per logged metric; columns
  whose name starts with ``_`` (``_runtime``, ``_timestamp``) and unnamed columns (a
  pandas index) are not metrics and are left out. A blank cell means "not logged at this
  step" and gives no row.

Column and key names become slash keys by :func:`~.rundir.metric_key`.

Bad input exits 2 with one line naming the file and the problem: no step column, a step
that is not an integer >= 0, a value that is not a number (line and column), a blank tidy
value, the same (step, key) twice, no value at all. Non-finite values (``nan``, ``inf``)
are left out and counted in the summary line.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from phasewatch.errors import ConfigError
from phasewatch.store.importers.rundir import (
    Imported,
    Series,
    check_duplicates,
    finite_rows,
    key_map,
    write_runs,
)

STEP_COLUMNS = ("step", "_step", "Step", "global_step")
TIDY_COLUMNS = ("step", "key", "value")


def _table(file: Path) -> pd.DataFrame:
    """The CSV as text cells (header stripped of whitespace).

    Raises:
        ConfigError: naming ``file`` if it is missing, not text or not a well-formed CSV.
    """
    try:
        df = pd.read_csv(file, dtype=str, keep_default_na=False, na_filter=False)
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file; allowed: a CSV file") from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: a directory; allowed: a CSV file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not a text file; allowed: a UTF-8 CSV file") from None
    except pd.errors.EmptyDataError:
        raise ConfigError(f"{file}: empty; allowed: a CSV with a header row") from None
    except pd.errors.ParserError as e:
        reason = str(e).strip().splitlines()[-1]
        raise ConfigError(f"{file}: not a well-formed CSV ({reason})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _step(text: str, file: Path, line: int, column: str) -> int:
    """An integer step >= 0 from a cell (``300`` or ``300.0``)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value.is_integer() or value < 0:
        raise ConfigError(
            f"{file}: line {line}, column {column!r}: step {text!r} is not an integer >= 0"
        )
    return int(value)


def _number(text: str, file: Path, line: int, column: str) -> float:
    """A float from a cell (``nan`` and ``inf`` included)."""
    try:
        return float(text)
    except ValueError:
        raise ConfigError(
            f"{file}: line {line}, column {column!r}: value {text!r} is not a number"
        ) from None


def _tidy_rows(df: pd.DataFrame, file: Path) -> list[tuple[int, str, float]]:
    """Rows of a tidy CSV (keys as written)."""
    if "run_id" in df.columns and df["run_id"].nunique() > 1:
        ids = ", ".join(sorted(df["run_id"].unique())[:3])
        raise ConfigError(
            f"{file}: holds {df['run_id'].nunique()} runs (run_id {ids}, ...); allowed: one "
            "run per file (filter by run_id first)"
        )
    rows = []
    for i, (step, key, value) in enumerate(zip(df["step"], df["key"], df["value"])):
        line = i + 2  # the header is line 1
        if not key.strip():
            raise ConfigError(f"{file}: line {line}: empty key")
        if not value.strip():
            raise ConfigError(f"{file}: line {line}, column 'value': empty value")
        rows.append((_step(step, file, line, "step"), key, _number(value, file, line, "value")))
    return rows


def _metric_columns(df: pd.DataFrame, step_col: str) -> list[str]:
    """The wide CSV's metric columns: not the step, not ``_``-prefixed, not unnamed."""
    return [
        c
        for c in df.columns
        if c != step_col and c and not c.startswith("_") and not c.startswith("Unnamed:")
    ]


def _wide_rows(df: pd.DataFrame, step_col: str, file: Path) -> list[tuple[int, str, float]]:
    """Rows of a wide CSV (keys as written); blank cells give no row."""
    columns = _metric_columns(df, step_col)
    if not columns:
        raise ConfigError(f"{file}: no metric columns besides {step_col!r}")
    rows = []
    for i, step_text in enumerate(df[step_col]):
        line = i + 2
        if not step_text.strip():
            raise ConfigError(f"{file}: line {line}, column {step_col!r}: empty step")
        step = _step(step_text, file, line, step_col)
        for c in columns:
            text = df[c].iat[i]
            if text.strip():
                rows.append((step, c, _number(text, file, line, c)))
    return rows


def read_csv(file: str | Path) -> Series:
    """The metrics of a tidy or wide CSV file (module docstring).

    Raises:
        ConfigError: one line naming ``file`` and the problem (module docstring).
    """
    file = Path(file)
    df = _table(file)
    if set(TIDY_COLUMNS) <= set(df.columns):
        fmt, step_col = "tidy", "step"
        rows = _tidy_rows(df, file)
    else:
        step_col = next((c for c in STEP_COLUMNS if c in df.columns), "")
        if not step_col:
            cols = ", ".join(list(df.columns)[:8])
            raise ConfigError(
                f"{file}: no step column (columns: {cols}); allowed: one of "
                f"{', '.join(STEP_COLUMNS)} (wide), or columns step,key,value (tidy)"
            )
        fmt = "wide"
        rows = _wide_rows(df, step_col, file)
    names = key_map(dict.fromkeys(r[1] for r in rows), file)
    rows = [(s, names[k], v) for s, k, v in rows]
    check_duplicates(pd.DataFrame(rows, columns=["step", "key", "value"]), file)
    metrics, skipped = finite_rows(rows)
    if metrics.empty:
        raise ConfigError(f"{file}: no finite numeric value; allowed: a CSV of metrics")
    task = {
        "source": str(file.resolve()),
        "format": fmt,
        "step_column": step_col,
        "renamed": {k: v for k, v in names.items() if k != v},
    }
    return Series(metrics, "csv", task, skipped)


def import_csv(
    file: str | Path,
    out: str | Path,
    *,
    onsets: dict[str, int] | None = None,
    replace: bool = False,
) -> Imported:
    """Import a CSV of metrics as the run directory ``out`` (:mod:`.rundir`).

    Args:
        file: a tidy or wide CSV (module docstring).
        out: the run directory to create.
        onsets: known onsets ``{name: step}`` written to events.json (``memorisation``
            anchors ``detect``'s analysis start).
        replace: overwrite ``out`` if it exists.

    Raises:
        ConfigError: on bad input (nothing is written).
        StoreError: if ``out`` exists (without ``replace``) or is not writable.
    """
    series = read_csv(file)
    return write_runs(out, {"": series}, onsets=onsets, replace=replace)[0]
