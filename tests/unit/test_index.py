"""The run index (``phasewatch runs ls``) built without pandas: each column's duckdb type
and values from known JSON values, the last value of each headline metric, and cells
printed as text (never read as rich markup)."""

from __future__ import annotations

import math
from pathlib import Path

from typer.testing import CliRunner

from phasewatch.cli.app import app
from phasewatch.store.index import index
from phasewatch.store.run import create_run_at, tidy

BASE = ["run", "phenomenon", "preset", "seed", "steps", "status"]


def write_run(root: Path, name: str, task: dict, metrics: list | None, onsets: dict) -> Path:
    """A finished run folder with ``task`` as its config's task fields (no training)."""
    cfg = {"phenomenon": "grokking", "preset": "quick", "task": task, "train": {"seed": 0}}
    rd = create_run_at(root / name, cfg, {"python": "3"})
    if metrics is not None:
        rd.write_metrics(tidy(metrics))
    rd.write_events({"onsets": onsets})
    rd.set_status("done", 10)
    return rd.path


def test_columns_are_typed_from_their_json_values(tmp_path):
    a = {"n": 1, "x": 1, "flag": True, "mixed": "a", "big": 2**70, "lst": [1, 2], "nan": math.nan}
    b = {"n": 2, "x": 0.5, "flag": False, "mixed": 3, "big": 1, "lst": None, "nan": 1.5}
    metrics = [(0, "test/acc", 0.1), (10, "test/acc", 0.9), (10, "train/loss", math.nan)]
    metrics += [(10, "loss/pos/3", 1.0)]  # a numbered family: no column
    ra = write_run(tmp_path, "a", a, metrics, {"gen": {"step": 7}, "never": {"step": None}})
    rb = write_run(tmp_path, "b", b, None, {})
    con, default = index(tmp_path)
    cur = con.execute("select * from runs")
    types = {d[0]: str(d[1]) for d in cur.description}
    rows = [dict(zip(types, r)) for r in cur.fetchall()]
    assert default == [*BASE, "onset/gen", "onset/never"]
    assert types == {
        **dict.fromkeys(["run", "phenomenon", "preset", "status"], "VARCHAR"),
        **dict.fromkeys(["seed", "steps", "onset/gen", "n"], "BIGINT"),
        "onset/never": "DOUBLE",  # no value at all: still compares with numbers
        "x": "DOUBLE",  # integers and floats
        "flag": "BOOLEAN",
        **dict.fromkeys(["mixed", "big", "lst"], "VARCHAR"),  # text, > 64 bits, a list
        "nan": "DOUBLE",
        "final/test/acc": "DOUBLE",
        "final/train/loss": "DOUBLE",
    }
    assert [r["run"] for r in rows] == [str(ra), str(rb)]
    first, second = rows
    assert (first["onset/gen"], first["onset/never"], second["onset/gen"]) == (7, None, None)
    assert (first["x"], second["x"], first["flag"], second["flag"]) == (1.0, 0.5, True, False)
    assert (first["mixed"], second["mixed"]) == ("a", "3")
    assert (first["big"], second["big"], first["lst"]) == (str(2**70), "1", "[1, 2]")
    assert (first["nan"], second["nan"]) == (None, 1.5)  # NaN is NULL, as pandas made it
    assert first["final/test/acc"] == 0.9  # the value at the last step
    assert first["final/train/loss"] is None  # NaN
    assert second["final/test/acc"] is None  # no metrics.parquet
    assert con.execute('select count(*) from runs where "onset/never" < 3000').fetchone() == (0,)


def test_table_cells_are_printed_as_text_not_markup(tmp_path):
    write_run(tmp_path, "a", {"note": "[bold]x[/bold] :smile:"}, None, {})
    r = CliRunner().invoke(app, ["runs", "ls", str(tmp_path), "--columns", "run,note"])
    assert r.exit_code == 0, r.output
    assert "[bold]x[/bold] :smile:" in r.output
