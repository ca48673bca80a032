"""End-to-end tiny induction runs through the API and the CLI: store files, events,
report section, exact resume, bad input exiting 2."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import torch

from phasewatch import api
from phasewatch.phenomena.induction.task import InductionTask
from phasewatch.store import open_run

TINY = {
    "vocab": 16,
    "n_ctx": 16,
    "span_len": 4,
    "d_model": 16,
    "n_heads": 2,
    "d_head": 8,
    "batch_size": 16,
    "eval_batch": 8,
    "steps": 30,
    "eval_every": 10,
    "checkpoint_every": 10,
    "threads": 1,
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return api.run("induction", overrides=TINY, out=tmp_path_factory.mktemp("ind"), progress=False)


def test_induction_tiny_run_writes_store_and_events(tiny_run):
    rd = tiny_run
    assert rd.status()["status"] == "done" and rd.checkpoint_steps() == [0, 10, 20, 30]
    cfg = rd.config()
    assert cfg["phenomenon"] == "induction" and cfg["preset"] == "olsson-2layer"
    assert cfg["task"]["n_layers"] == 2 and cfg["task"]["vocab"] == 16
    m = rd.metrics()
    assert sorted(m["step"].unique()) == [0, 10, 20, 30]
    keys = set(m["key"])
    for k in ("train/loss", "icl/score", "loss/first_half", "loss/repeated", "loss/pos/0"):
        assert k in keys
    assert {f"heads/prefix_matching/L{layer}H{h}" for layer in (0, 1) for h in (0, 1)} <= keys
    ev = rd.events()
    assert set(ev["onsets"]) == {"previous_token_head", "induction_head", "icl_jump"}
    assert ev["icl_positions"]["early"] == 1 and ev["icl_positions"]["late"] == 12
    assert set(ev["phase_change"]["icl_score"]) == {"start", "mid", "end", "change"}
    top = ev["top_induction_head"]
    assert top["name"] == f"L{top['layer']}H{top['head']}" and top["after_step"] == 30
    for h in ev["induction_heads"]:
        assert h["prefix_matching"] >= ev["induction_threshold"]


def test_induction_attention_table_is_a_causal_pattern(tiny_run):
    t = tiny_run.table("attention_top_head")
    assert set(t["phase"]) == {"before", "after"}
    n = 16 * 17 // 2  # causal entries of a 16-token sequence
    assert (t.groupby("phase").size() == n).all()
    assert (t["key"] <= t["query"]).all()
    rows = t.groupby(["phase", "query"])["weight"].sum()
    assert rows.between(1 - 1e-5, 1 + 1e-5).all()  # each query's attention sums to 1


def test_induction_report_section_reads_the_store(tiny_run):
    from phasewatch.report.registry import sections_for
    from phasewatch.report.sections.induction import induction_section

    assert induction_section in sections_for("induction")
    html = "".join(induction_section(tiny_run))
    assert html.startswith("<h2>Induction heads</h2>")
    assert "Attention of the top induction head" in html
    assert "Per-head scores" in html and "Loss per token index" in html
    top = tiny_run.events()["top_induction_head"]["name"]
    assert top in html


def test_induction_full_report_has_the_section_and_grouped_head_panels(tiny_run):
    html = (tiny_run.path / "report.html").read_text()
    assert "<h2>Induction heads</h2>" in html and "Attention of the top induction head" in html
    assert "heads/prefix_matching" in html  # per-head keys share one panel of the curves
    assert (tiny_run.path / "figures" / "curves.png").stat().st_size > 10_000
    assert (tiny_run.path / "figures" / "loss_pos.png").exists()  # per-position loss heatmap


def test_induction_resume_after_kill_matches_uninterrupted_run(tmp_path, tiny_run, monkeypatch):
    real_loss, calls = InductionTask.train_loss, {"n": 0}

    def dying_loss(self, step):
        calls["n"] += 1
        if calls["n"] == 16:  # between the checkpoints at steps 10 and 20
            raise KeyboardInterrupt
        return real_loss(self, step)

    monkeypatch.setattr(InductionTask, "train_loss", dying_loss)
    with pytest.raises(KeyboardInterrupt):
        api.run("induction", overrides=TINY, out=tmp_path, progress=False, report=False)
    monkeypatch.setattr(InductionTask, "train_loss", real_loss)
    (killed,) = tmp_path.iterdir()
    assert open_run(killed).checkpoint_steps()[-1] == 10
    resumed = api.run("induction", resume=killed, progress=False, report=False)
    a = tiny_run.load_checkpoint(30)
    b = resumed.load_checkpoint(30)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    pd.testing.assert_frame_equal(tiny_run.metrics(), resumed.metrics())


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--n-ctx", "20"], "n_ctx=20 is invalid; allowed: an integer >= span_len * repeats"),
        (["--n-layers", "0"], "n_layers=0 is invalid; allowed: an integer in 1..4"),
        (["--vocab", "8"], "vocab=8 is invalid; allowed: an integer >= span_len (16)"),
    ],
)
def test_induction_cli_bad_config_exits_2_naming_the_field(tmp_path, args, needle):
    out = tmp_path / "runs"
    r = subprocess.run(
        [sys.executable, "-m", "phasewatch", "run", "induction", *args, "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: ") and needle in line
    assert not out.exists()
