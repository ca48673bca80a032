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

``--where`` is one boolean expression over these columns (duckdb syntax; column names
containing ``/`` may be written bare: ``onset/generalisation < 3000``), not SQL: see
:func:`where_clause` for what it may contain. The tables are loaded into an in-memory
duckdb first; the query then runs with external access disabled and the configuration
locked, and its error messages never quote values read from the runs.

Damaged runs (a folder with ``config.json`` and ``status.json`` or ``env.json`` that cannot
be read: unparsable or ill-typed JSON, a directory in a file's place, an unreadable
``metrics.parquet``) are left out of the index with one warning line each on stderr
(``warning: skipped damaged run <path>: <reason>``); the other runs are listed as usual.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb

from phasewatch.config import require
from phasewatch.errors import ConfigError, StoreError
from phasewatch.store.run import RunDir
from phasewatch.store.where import ident as _ident
from phasewatch.store.where import where_clause

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


Warn = Callable[[str], None]
"""``warn(line)``: receives one line per damaged run (default: printed to stderr)."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _is_run(folder: Path) -> bool:
    """A run folder holds config.json and status.json or env.json (a bare config.json, as
    in a Hugging Face export inside a run, is not a run)."""
    return (folder / "status.json").exists() or (folder / "env.json").exists()


def _scan(root: str | Path, warn: Warn | None) -> Iterator[tuple[dict[str, Any], dict]]:
    """``(summary row, config)`` of every readable run under ``root``; each damaged run is
    reported to ``warn`` in one line and skipped.

    Raises:
        StoreError: if ``root`` does not exist or is not a directory.
    """
    root = Path(root)
    if not root.is_dir():
        what = "not a directory" if root.exists() else "no such directory"
        raise StoreError(f"{root}: {what}; allowed: a directory of runs")
    warn = warn or _stderr
    for cfg_file in sorted(root.rglob("config.json")):
        if not _is_run(cfg_file.parent):
            continue
        rd = RunDir(cfg_file.parent)
        try:
            yield _summary(rd)
        except StoreError as e:
            warn(f"warning: skipped damaged run {rd.path}: {_reason(e, rd.path)}")


def _reason(e: StoreError, path: Path) -> str:
    """The error without its leading ``<path>: `` (the warning names the run already)."""
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    return msg.removeprefix(f"{path}: ")


def _summary(rd: RunDir) -> tuple[dict[str, Any], dict]:
    """The run's summary row and config.

    Raises:
        StoreError: if config.json, status.json or events.json is missing, unreadable or
            ill-typed (onsets must map names to objects).
    """
    cfg, status, events = rd.config(), rd.status(), rd.events()
    onsets = events.get("onsets", {})
    if not isinstance(onsets, dict) or not all(isinstance(v, dict) for v in onsets.values()):
        raise StoreError(f"{rd.path}: corrupted events.json (onsets must map names to objects)")
    row = {
        "run": str(rd.path),
        "phenomenon": cfg["phenomenon"],
        "preset": cfg.get("preset"),
        "seed": cfg["train"].get("seed"),
        "steps": status.get("step"),
        "status": live_status(status),
    }
    for name, ev in onsets.items():
        row[f"onset/{name}"] = ev.get("step")
    return row, cfg


def list_runs(root: str | Path = "runs", *, warn: Warn | None = None) -> list[dict[str, Any]]:
    """One summary dict per run directory found under ``root`` (recursively); damaged runs
    are skipped with one line each to ``warn`` (default: stderr).

    Raises:
        StoreError: if ``root`` does not exist or is not a directory.
    """
    return [row for row, _ in _scan(root, warn)]


def _config_rows(found: list[tuple[dict[str, Any], dict]]) -> list[dict[str, Any]]:
    """The base rows plus every config field (task and train) by name."""
    out = []
    for r, cfg in found:
        fields = {**cfg["task"], **cfg["train"]}
        out.append({**r, **{k: v for k, v in fields.items() if k not in r}})
    return out


_INT64 = (-(2**63), 2**63 - 1)


def _typed(values: list[Any]) -> tuple[str, list[Any]]:
    """A nullable column typed from its JSON values, as (duckdb type, values): integers
    stay integers (BIGINT), numbers are DOUBLE (NaN is NULL), booleans BOOLEAN, anything
    mixed with text is text (VARCHAR, ``str`` of each value); a column with no value at
    all (an onset no run reached) is DOUBLE, so that ``onset/x < 3000`` compares; numbers
    too large for 64 bits are text."""
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bool}:
        return "BOOLEAN", values
    if kinds == {int} and all(v is None or _INT64[0] <= v <= _INT64[1] for v in values):
        return "BIGINT", values
    if kinds <= {int, float} and kinds != {int}:
        try:
            return "DOUBLE", [None if v is None or v != v else float(v) for v in values]
        except OverflowError:
            pass
    return "VARCHAR", [None if v is None else str(v) for v in values]


_FINAL_SQL = f"""select parse_dirpath(filename) as run, 'final/' || key as key,
                arg_max(value, step) as value
         from read_parquet($files, filename = true)
         where {_HEADLINE} or key like '%/max'
         group by all"""


def _final_metrics(
    con: duckdb.DuckDBPyConnection, runs: list[str], warn: Warn
) -> tuple[dict[str, dict[str, float | None]], set[str]]:
    """The ``final/<key>`` values (run -> key -> value; NaN is None) and the runs whose
    metrics.parquet duckdb cannot read (each reported to ``warn``)."""
    files = [str(Path(r) / "metrics.parquet") for r in runs]
    files = [f for f in files if Path(f).exists()]
    bad: set[str] = set()
    try:
        long = con.execute(_FINAL_SQL, {"files": files}).fetchall() if files else []
    except duckdb.Error:  # one damaged file fails the whole read: find it, read the rest
        good = []
        for f in files:
            try:
                con.execute(_FINAL_SQL, {"files": [f]}).fetchall()
                good.append(f)
            except duckdb.Error as e:
                bad.add(str(Path(f).parent))
                # the message names the problem only: duckdb's text may quote the file
                warn(
                    f"warning: skipped damaged run {Path(f).parent}: unreadable "
                    f"metrics.parquet ({type(e).__name__})"
                )
        long = con.execute(_FINAL_SQL, {"files": good}).fetchall() if good else []
    final: dict[str, dict[str, float | None]] = {}
    for run, key, value in long:
        final.setdefault(run, {})[key] = None if value is None or value != value else value
    return final, bad


def _create_table(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """The table ``runs`` of ``rows`` (one dict per run; a key missing from a row is NULL),
    columns in first-seen order, each typed by :func:`_typed`; one statement that unnests
    one list parameter per column (no pandas or pyarrow)."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    typed = [_typed([r.get(c) for r in rows]) for c in columns]
    select = ", ".join(
        f"unnest(${i}::{kind}[]) as {_ident(c)}"
        for i, (c, (kind, _)) in enumerate(zip(columns, typed), start=1)
    )
    con.execute(f"create table runs as select {select}", [values for _, values in typed])


def index(
    root: str | Path, *, warn: Warn | None = None
) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    """An in-memory duckdb connection with the table ``runs`` of every readable run under
    ``root``, and the default columns (``runs ls`` without ``--columns``). Once the table
    is loaded the connection can read no file (external access disabled, configuration
    locked).

    Raises:
        StoreError: if ``root`` does not exist or is not a directory.
    """
    warn = warn or _stderr
    found = list(_scan(root, warn))
    con = duckdb.connect()
    if found:
        final, bad = _final_metrics(con, [r["run"] for r, _ in found], warn)
        found = [(r, c) for r, c in found if r["run"] not in bad]
    if not found:
        con.execute(
            "create table runs as select " + ", ".join(f"null as {_ident(c)}" for c in BASE)
        )
        default = list(BASE)
    else:
        keys = sorted({k for values in final.values() for k in values})
        rows = []
        for r in _config_rows(found):  # runs without metrics get NULL final/ columns
            got = final.get(r["run"], {})
            rows.append(r | {k: got.get(k) for k in keys if k not in r})
        _create_table(con, rows)
        default = list(dict.fromkeys(k for r, _ in found for k in r))
    con.execute("set enable_external_access = false")
    con.execute("set lock_configuration = true")
    return con, default


def query(
    root: str | Path,
    *,
    where: str | None = None,
    sort: str | None = None,
    columns: str | None = None,
    warn: Warn | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Rows of the run index under ``root``.

    Args:
        where: one boolean expression over the columns (``status='done' and lr > 1e-3``;
            see :func:`where_clause`).
        sort: comma-separated columns, ``-`` before one for descending; NULLs last.
        columns: comma-separated columns, or ``all`` (default: the ``runs ls`` columns).
        warn: receives one line per damaged run skipped (default: stderr).

    Returns:
        Column names and rows (Python values; None for missing).

    Raises:
        ConfigError: an unknown column or an invalid ``where``; the message lists the
            columns and never quotes values read from the runs.
        StoreError: if ``root`` does not exist or is not a directory.
    """
    con, default = index(root, warn=warn)
    available = [d[0] for d in con.execute("select * from runs limit 0").description]
    listing = ", ".join(c if c.isprintable() else repr(c) for c in available)  # one line
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
    sql = "select " + ", ".join(_ident(c) for c in cols) + " from runs"
    if where is not None:
        expr = where_clause(where, available)
        _require_boolean(con, expr, where, listing)
        sql += f" where ({expr})"
    if order:
        sql += " order by " + ", ".join(f"{_ident(c)} {d} nulls last" for c, d in order)
    statements = duckdb.extract_statements(sql)
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise ConfigError(f"--where {where!r}: not one expression; columns: {listing}")
    try:
        return cols, con.execute(sql).fetchall()
    except duckdb.Error as e:
        raise ConfigError(f"--where {where!r}: {_safe_error(e)}; columns: {listing}") from None


def _require_boolean(con: duckdb.DuckDBPyConnection, expr: str, where: str, listing: str) -> None:
    """Bind ``expr`` (no row is read) and require a boolean (or NULL) result."""
    try:
        kind = str(con.execute(f"select ({expr}) from runs limit 0").description[0][1])
    except duckdb.Error as e:
        raise ConfigError(f"--where {where!r}: {_safe_error(e)}; columns: {listing}") from None
    if kind not in ("BOOLEAN", '"NULL"'):
        raise ConfigError(
            f"--where {where!r} is a {kind}; allowed: a boolean expression (a comparison, "
            f"and/or/not, ...); columns: {listing}"
        )


def _safe_error(e: duckdb.Error) -> str:
    """duckdb's message if it comes from parsing or binding the query (it quotes only the
    query), else just the error's kind: a failing cast or function quotes the value it
    read, which is file content."""
    if isinstance(e, (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException)):
        return str(e).strip().splitlines()[0]
    kind = type(e).__name__.removesuffix("Exception")
    return (
        f"{kind} error while evaluating it on the runs (values are not shown; compare "
        "like types: see --columns all --format json)"
    )
