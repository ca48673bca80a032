"""The run index: every run directory under a path as one duckdb table, queried with SQL.

Columns (one row per run):
    run, phenomenon, preset, seed, steps, status, onset/<name>: as ``phasewatch runs ls``
        has always shown them (status ``interrupted`` = ``running`` with its process gone);
    every config field by its name (``p``, ``train_frac``, ``lr``, ``weight_decay``, ...;
        fields of other phenomena are NULL);
    final/<key>: the last logged value of each headline metric in ``metrics.parquet``,
        read by duckdb: keys with one slash whose last part is not a number
        (``final/test/acc``, ``final/icl/score``) and per-family maxima (``.../max``);
        numbered families (``loss/pos/3``, ``dim/17``) are left out.

``--where`` is a duckdb SQL condition on these columns; column names containing ``/`` may
be written bare (``onset/generalisation < 3000``) and are quoted for duckdb.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from phasewatch.config import require
from phasewatch.errors import ConfigError, StoreError
from phasewatch.store.run import RunDir

BASE = ("run", "phenomenon", "preset", "seed", "steps", "status")
_HEADLINE = r"(regexp_matches(key, '^[^/]+/[^/]+$') and not regexp_matches(key, '/[0-9]+$'))"


def live_status(status: dict[str, Any]) -> str | None:
    """``running`` becomes ``interrupted`` when its process on this host is gone."""
    if status.get("status") != "running" or status.get("host") != socket.gethostname():
        return status.get("status")
    try:
        pid = int(status["pid"])
        os.kill(pid, 0)
    except (OSError, KeyError, TypeError, ValueError):
        return "interrupted"
    return "interrupted" if _zombie(pid) else "running"


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited but is not yet reaped by its parent (Linux ``/proc``; a
    SIGKILLed Ray worker stays a zombie until the raylet reaps it, and signal 0 still
    reaches it). False where ``/proc`` is unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def list_runs(root: str | Path = "runs") -> list[dict[str, Any]]:
    """One summary dict per run directory found under ``root`` (recursively)."""
    root = Path(root)
    if not root.exists():
        return []
    out = []
    for cfg_file in sorted(root.rglob("config.json")):
        rd = RunDir(cfg_file.parent)
        try:
            cfg, status = rd.config(), rd.status()
        except StoreError:
            continue
        events = rd.events() if (rd.path / "events.json").exists() else {}
        row = {
            "run": str(rd.path),
            "phenomenon": cfg["phenomenon"],
            "preset": cfg.get("preset"),
            "seed": cfg["train"].get("seed"),
            "steps": status.get("step"),
            "status": live_status(status),
        }
        for name, ev in events.get("onsets", {}).items():
            row[f"onset/{name}"] = ev.get("step")
        out.append(row)
    return out


def _config_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The base rows plus every config field (task and train) by name."""
    out = []
    for r in rows:
        cfg = json.loads((Path(r["run"]) / "config.json").read_text())
        fields = {**cfg.get("task", {}), **cfg.get("train", {})}
        out.append({**r, **{k: v for k, v in fields.items() if k not in r}})
    columns = list(dict.fromkeys(k for r in out for k in r))
    return pd.DataFrame({c: _typed([r.get(c) for r in out]) for c in columns})


def _typed(values: list[Any]) -> pd.Series:
    """A nullable column typed from its JSON values: integers stay integers (Int64),
    numbers are Float64, booleans boolean, anything mixed with text is text."""
    kinds = {type(v) for v in values if v is not None}
    if kinds == {int}:
        return pd.Series(values, dtype="Int64")
    if kinds and kinds <= {int, float}:
        return pd.Series(values, dtype="Float64")
    if kinds == {bool}:
        return pd.Series(values, dtype="boolean")
    return pd.Series([None if v is None else str(v) for v in values], dtype="string")


def _final_metrics(con: duckdb.DuckDBPyConnection, runs: list[str]) -> pd.DataFrame:
    files = [str(Path(r) / "metrics.parquet") for r in runs]
    files = [f for f in files if Path(f).is_file()]
    if not files:
        return pd.DataFrame({"run": pd.Series(dtype="string")})
    long = con.execute(
        f"""select parse_dirpath(filename) as run, 'final/' || key as key,
                   arg_max(value, step) as value
            from read_parquet($files, filename = true)
            where {_HEADLINE} or key like '%/max'
            group by all""",
        {"files": files},
    ).df()
    wide = long.pivot(index="run", columns="key", values="value").reset_index()
    wide.columns.name = None
    return wide


def index(root: str | Path) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    """A duckdb connection with the view ``runs`` over every run under ``root``, and the
    default columns (``runs ls`` without ``--columns``)."""
    rows = list_runs(root)
    con = duckdb.connect()
    if not rows:
        con.execute("create view runs as select " + ", ".join(f'null as "{c}"' for c in BASE))
        return con, list(BASE)
    base = _config_rows(rows)
    final = _final_metrics(con, [r["run"] for r in rows])
    con.register("runs_frame", base.merge(final, on="run", how="left"))
    con.execute("create view runs as select * from runs_frame")
    default = list(dict.fromkeys(k for r in rows for k in r))
    return con, default


def _quote_columns(sql: str, columns: list[str]) -> str:
    """Quote bare column names that contain ``/`` (longest first)."""
    for c in sorted((c for c in columns if "/" in c), key=len, reverse=True):
        sql = re.sub(rf'(?<![\w/"]){re.escape(c)}(?![\w/"])', f'"{c}"', sql)
    return sql


def query(
    root: str | Path,
    *,
    where: str | None = None,
    sort: str | None = None,
    columns: str | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Rows of the run index under ``root``.

    Args:
        where: a duckdb SQL condition (``status='done' and lr > 1e-3``).
        sort: comma-separated columns, ``-`` before one for descending; NULLs last.
        columns: comma-separated columns, or ``all`` (default: the ``runs ls`` columns).

    Returns:
        Column names and rows (Python values; None for missing).

    Raises:
        ConfigError: an unknown column or an invalid ``where``; the message lists the columns.
    """
    con, default = index(root)
    available = [d[0] for d in con.execute("select * from runs limit 0").description]
    listing = ", ".join(available)
    if columns in (None, ""):
        cols = default
    elif columns == "all":
        cols = available
    else:
        cols = [c.strip() for c in columns.split(",") if c.strip()]
    order = []
    for s in (sort or "").split(","):
        s = s.strip()
        if s:
            desc = s.startswith("-")
            order.append((s.lstrip("-"), "desc" if desc else "asc"))
    for c in cols + [c for c, _ in order]:
        require(c in available, "column", listing, c)
    sql = "select " + ", ".join(f'"{c}"' for c in cols) + " from runs"
    if where:
        sql += " where " + _quote_columns(where, available)
    if order:
        sql += " order by " + ", ".join(f'"{c}" {d} nulls last' for c, d in order)
    try:
        return cols, con.execute(sql).fetchall()
    except duckdb.Error as e:
        msg = str(e).strip().splitlines()[0]
        raise ConfigError(f"--where {where!r}: {msg}; columns: {listing}") from None
