"""``signals.parquet`` and ``signals.json`` of a run: the signals table's reader and writer.

Layout (DESIGN.md §9):

    <run>/signals.parquet   tidy: step (int64), key, value (float64), signal, settings
                            (hash of the signal's settings)
    <run>/signals.json      settings per hash, warnings per (step, signal), calibration
    <run>/tables/<name>.parquet   per-step tables of a signal (step, settings, ...)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from phasewatch.errors import StoreError
from phasewatch.store.atomic import write_json, write_parquet
from phasewatch.store.run import RunDir

COLUMNS = ["step", "key", "value", "signal", "settings"]
_DTYPES = {"step": "int64", "key": "str", "value": "float64", "signal": "str", "settings": "str"}


@dataclass
class StepResult:
    """What the signals measured at one step (a checkpoint, or a trajectory signal's t).

    Attributes:
        step: the step (optimiser updates).
        rows: ``(step, key, value, signal, settings hash)`` per value, for
            ``signals.parquet``.
        tables: table name -> rows of that step (``step`` and ``settings`` columns added).
        warnings: ``{"step", "signal", "settings", "message"}`` per signal warning
            (including a signal that was not applicable at this step).
    """

    step: int
    rows: list[tuple[int, str, float, str, str]] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: StepResult) -> None:
        """Append ``other``'s rows, tables and warnings (same step) to this result."""
        self.rows += other.rows
        self.tables.update(other.tables)
        self.warnings += other.warnings


def read_signals(run: RunDir) -> pd.DataFrame:
    """``signals.parquet`` of ``run`` (an empty table if the run has none).

    Raises:
        StoreError: if the file is corrupted.
    """
    f = run.path / "signals.parquet"
    if not f.exists():
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _DTYPES.items()})
    try:
        return pd.read_parquet(f)
    except Exception as e:  # pyarrow raises several types on a bad file
        raise StoreError(f"{run.path}: corrupted signals.parquet ({type(e).__name__})") from e


def read_signals_json(run: RunDir) -> dict[str, Any]:
    """``signals.json`` of ``run`` ({} if absent); :class:`StoreError` if corrupted."""
    f = run.path / "signals.json"
    if not f.exists():
        return {}
    try:
        return json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"{run.path}: corrupted signals.json ({e})") from None


class SignalStore:
    """Accumulates results and rewrites ``signals.parquet``/``signals.json``/tables atomically.

    Args:
        run: the run directory.
        resolved: ``{signal name: settings dataclass}`` of the signals being measured, with
            their settings hashes ``{name: hash}`` in ``hashes``.
    """

    def __init__(self, run: RunDir, resolved: dict[str, Any], hashes: dict[str, str]) -> None:
        self.run = run
        self.table = read_signals(run)
        self.meta = read_signals_json(run)
        reg = self.meta.setdefault("settings", {})
        for name, st in resolved.items():
            reg[hashes[name]] = {"signal": name, "settings": dataclasses.asdict(st)}
        self.meta.setdefault("warnings", [])

    def done(self, step: int, name: str, h: str) -> bool:
        """Whether ``step`` is already measured by signal ``name`` with settings hash ``h``."""
        t = self.table
        return bool(((t["step"] == step) & (t["signal"] == name) & (t["settings"] == h)).any())

    def add_many(self, results: list[StepResult]) -> None:
        """:meth:`add` several results, writing the files once."""
        for res in results:
            self.add(res, write=False)
        if results:
            self._write()

    def add(self, res: StepResult, *, write: bool = True) -> None:
        """Replace the rows, warnings and tables of ``res.step`` for the signals in ``res``
        (those with rows or warnings, so a repeated not-applicable warning is not doubled)."""
        measured = {r[3] for r in res.rows} | {w["signal"] for w in res.warnings}
        t = self.table
        keep = ~((t["step"] == res.step) & t["signal"].isin(measured))
        new = pd.DataFrame(res.rows, columns=COLUMNS).astype(_DTYPES)
        self.table = pd.concat([t[keep], new], ignore_index=True)
        self.table = self.table.sort_values(["step", "signal", "key"], kind="stable")
        self.meta["warnings"] = [
            w
            for w in self.meta["warnings"]
            if not (w["step"] == res.step and w["signal"] in measured)
        ] + res.warnings
        for name, df in res.tables.items():
            old = self.run.table(name)
            if old is not None:
                df = pd.concat([old[old["step"] != res.step], df], ignore_index=True)
            self.run.write_table(name, df)
        if write:
            self._write()

    def _write(self) -> None:
        write_json(self.run.path / "signals.json", self.meta)
        write_parquet(self.run.path / "signals.parquet", self.table.reset_index(drop=True))
