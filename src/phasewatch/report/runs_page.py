"""``index.html`` for a directory of runs: the run table and one metric's curves across runs.

The page is self-contained (plotly.js and the page's own script inlined, no network): the
table has the ``phasewatch runs ls`` columns (:mod:`phasewatch.store.index`) plus a link
to each run's ``report.html``, sorts by a click on a column header and filters by a text
box; below it the curves of the metric key picked in a select box are overlaid across the
runs shown, coloured by the config field picked in a second one, with each run's onsets
marked. Served by ``phasewatch view`` the page polls ``runs.json`` (:func:`runs_data`
regenerated per request) and redraws in place while runs train.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phasewatch.report.html import page
from phasewatch.report.runs_script import CSS, SCRIPT
from phasewatch.store.atomic import write_text
from phasewatch.store.index import BASE, Warn, index
from phasewatch.store.run import RunDir

INDEX = "index.html"
DATA = "runs.json"
MAX_POINTS = 200  # points kept per curve (evenly spaced, the last step always kept)
_INDEXED = re.compile(r"/\d+$")  # numbered families (loss/pos/3) are not offered as curves
_PREFERRED = ("test/acc", "test/loss", "train/loss")


def _clean(v: Any) -> Any:
    """A JSON-safe scalar: non-finite floats and pandas' NA become None."""
    if v is None or v is pd.NA:
        return None
    if isinstance(v, float | np.floating):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer | np.bool_):
        return v.item()
    return v


def _curves(rd: RunDir) -> dict[str, list[list[float]]]:
    """``{key: [steps, values]}`` of the run's scalar metrics, at most ``MAX_POINTS`` each."""
    m = rd.metrics()
    out: dict[str, list[list[float]]] = {}
    for key, g in m[~m["key"].str.contains(_INDEXED)].groupby("key", sort=True):
        g = g.sort_values("step")
        if len(g) > MAX_POINTS:
            g = g.iloc[np.unique(np.linspace(0, len(g) - 1, MAX_POINTS).round().astype(int))]
        out[str(key)] = [g["step"].tolist(), [_clean(v) for v in g["value"]]]
    return out


def runs_data(root: str | Path, *, warn: Warn | None = None) -> dict[str, Any]:
    """Everything the page shows, as JSON-safe data.

    Returns:
        ``columns`` (the table's, ``runs ls`` order), ``fields`` (columns to colour by:
        config fields, phenomenon, preset, seed, status), ``keys`` (metric keys, the
        preferred default first), and ``runs``: one dict per run with ``row`` (column →
        value), ``path`` (relative to ``root``), ``report`` (relative link or None),
        ``onsets`` (name → step) and ``curves`` (key → [steps, values]); ``color`` is
        the default colour field (the first config field that differs between runs).

    Raises:
        StoreError: if ``root`` does not exist or is not a directory.
    """
    root = Path(root)
    con, default = index(root, warn=warn)
    cur = con.execute("select * from runs")
    names = [d[0] for d in cur.description]
    records = [dict(zip(names, r)) for r in cur.fetchall() if r[0] is not None]
    fields = [c for c in names if c not in default and not c.startswith("final/")]
    fields = [c for c in BASE if c not in ("run", "steps")] + fields
    runs, keys = [], set()
    for rec in records:
        rd = RunDir(rec["run"])
        curves = _curves(rd)
        keys |= curves.keys()
        rel = Path(os.path.relpath(rd.path, root)).as_posix()
        report = rd.path / "report.html"
        runs.append(
            {
                "row": {k: _clean(v) for k, v in rec.items()} | {"run": rel},
                "path": rel,
                "report": f"{rel}/report.html" if report.exists() else None,
                "onsets": {
                    c.removeprefix("onset/"): _clean(rec[c])
                    for c in default
                    if c.startswith("onset/") and _clean(rec[c]) is not None
                },
                "curves": curves,
            }
        )
    ordered = [k for k in _PREFERRED if k in keys] + sorted(keys - set(_PREFERRED))
    data = {"columns": default, "fields": fields, "keys": ordered, "runs": runs}
    return data | {"color": _varying(fields, [r["row"] for r in runs])}


def _varying(fields: list[str], rows: list[dict[str, Any]]) -> str | None:
    """The default colour field: the first config field whose value differs between runs,
    else the first base field that does (seed, ...), else the first field."""
    base = [f for f in fields if f in BASE]
    for f in [f for f in fields if f not in BASE] + base:
        if len({json.dumps(r.get(f), default=str) for r in rows}) > 1:
            return f
    return fields[0] if fields else None


def _json_script(data: dict[str, Any]) -> str:
    """``data`` as an inline JSON script element (``</`` escaped so it cannot close it)."""
    text = json.dumps(data, allow_nan=False, default=str).replace("</", "<\\/")
    return f"<script id='runs-data' type='application/json'>{text}</script>"


def build_runs_page(root: str | Path, *, warn: Warn | None = None) -> Path:
    """Write ``<root>/index.html`` for every run under ``root``; return its path.

    Raises:
        StoreError: if ``root`` does not exist, is not a directory or is not writable.
    """
    root = Path(root)
    data = runs_data(root, warn=warn)
    title = f"phasewatch runs: {root.resolve().name}"
    parts = [
        f"<style>{CSS}</style>",
        f"<h1>{html.escape(title)}</h1>",
        "<div class='controls'><label>filter <input id='filter' type='search' "
        "placeholder='text in any cell'></label> <span id='count'></span></div>",
        "<table id='runs'><thead></thead><tbody></tbody></table>",
        "<div class='controls'><label>metric <select id='key'></select></label> "
        "<label>colour by <select id='color'></select></label></div>",
        "<div id='curves'></div>",
        _json_script(data),
        f"<script>{SCRIPT}</script>",
    ]
    path = root / INDEX
    write_text(path, page(title, parts))
    return path


def runs_json(root: str | Path) -> bytes:
    """:func:`runs_data` as UTF-8 JSON (what ``phasewatch view`` serves as ``runs.json``);
    damaged runs are left out silently."""
    data = runs_data(root, warn=lambda line: None)
    return json.dumps(data, allow_nan=False, default=str).encode()
