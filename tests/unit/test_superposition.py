"""The superposition phenomenon: config errors, data, the fused loss, a tiny end-to-end run
with its store files and report section, resume, and the capacity CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from phasewatch import api, phenomena
from phasewatch.cli.superposition import superposition_app
from phasewatch.config import TrainConfig
from phasewatch.errors import ConfigError
from phasewatch.phenomena.superposition import SuperpositionConfig
from phasewatch.phenomena.superposition import model as superposition_model
from phasewatch.phenomena.superposition.capacity import capacity
from phasewatch.phenomena.superposition.data import data_rng, sample_features
from phasewatch.phenomena.superposition.model import FusedToyLoss, GramToyLoss, gram_is_cheaper
from phasewatch.phenomena.superposition.task import SuperpositionTask, _StackedBatch
from phasewatch.report.sections.superposition import superposition_section
from phasewatch.report.summary import summarise
from phasewatch.store import open_run
from phasewatch.training.batched import loss_function, stack_models

TINY = {
    "n": 6,
    "m": 2,
    "n_densities": 3,
    "batch": 64,
    "steps": 40,
    "eval_every": 5,
    "checkpoint_every": 10,
    "threads": 1,
}


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("m", 0, r"m=0 is invalid; allowed: an integer >= 1"),
        ("m", -3, r"m=-3 is invalid"),
        ("n", 0, r"n=0 is invalid"),
        ("density_max", 1.5, r"density_max=1.5 is invalid; allowed: a float in \(0, 1\]"),
        ("density_max", 0.0, r"density_max=0.0 is invalid"),
        (
            "density_min",
            0.0,
            r"density_min=0.0 is invalid; allowed: a float in \(0, density_max=1\]",
        ),
        ("density_min", -0.1, r"density_min=-0.1 is invalid"),
        ("importance_decay", 0.0, r"importance_decay=0.0 is invalid; allowed: a float > 0"),
        ("importance_decay", -0.9, r"importance_decay=-0.9 is invalid"),
        ("importance_min", -1.0, r"importance_min=-1.0 is invalid; allowed: a float > 0"),
        ("n_densities", 0, r"n_densities=0 is invalid"),
    ],
)
def test_config_errors_name_field_and_allowed_values(field, value, match):
    with pytest.raises(ConfigError, match=match):
        SuperpositionConfig(**{field: value})


def test_bad_config_is_rejected_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="m=0"):
        api.run("superposition", overrides={"m": 0}, out=tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists()


def test_cli_bad_input_exits_2_with_one_line_and_help_lists_fields(tmp_path):
    from phasewatch.cli.app import app

    runner = CliRunner()
    out = tmp_path / "runs"
    r = runner.invoke(app, ["run", "superposition", "--density-min", "0", "--out", str(out)])
    assert r.exit_code == 2
    (line,) = r.output.strip().splitlines()
    assert line.startswith("error: density_min=0.0 is invalid; allowed: a float in (0,")
    assert not out.exists()
    help_text = runner.invoke(
        app, ["run", "superposition", "--help"], env={"COLUMNS": "200"}
    ).output
    for flag in ("--n-densities", "--density-min", "--importance-decay", "--norm-threshold"):
        assert flag in help_text
    assert "density levels, log-spaced" in help_text
    assert "phase-diagram" in help_text and "geometry" in help_text


def test_intro_densities_and_phase_grid_layout():
    dens, imp = SuperpositionConfig().grid()
    torch.testing.assert_close(dens, 20 ** -torch.linspace(0, 1, 10, dtype=torch.float64))
    torch.testing.assert_close(imp[3], 0.9 ** torch.arange(5, dtype=torch.float64))
    cfg = SuperpositionConfig(n=2, m=1, n_densities=3, n_importances=2, importance_decay=1.0)
    dens, imp = cfg.grid()
    assert cfg.instances == 6 and imp.shape == (6, 2)
    assert imp[:, 0].tolist() == [1.0] * 6
    assert imp[:, 1].tolist() == pytest.approx([0.1] * 3 + [10.0] * 3)
    assert dens.tolist() == pytest.approx([1.0, 0.05**0.5, 0.05] * 2)
    twice = SuperpositionConfig(n=2, m=1, n_densities=3, n_importances=2, replicas=2)
    d2, i2 = twice.grid()
    assert twice.instances == 12
    torch.testing.assert_close(d2, dens.repeat_interleave(2))
    torch.testing.assert_close(i2[::2, -1] / i2[::2, 0], imp[:, -1] / imp[:, 0])
    task = SuperpositionTask.from_config(twice, TrainConfig())
    x = task.eval_batch()  # replicas of a cell share the eval data, not the weights
    assert torch.equal(x[0], x[1]) and not torch.equal(x[1], x[2])
    assert not torch.equal(task.model.W[0], task.model.W[1])


def test_data_follow_the_paper_distribution_and_depend_on_seed_and_step_only():
    dens = torch.tensor([1.0, 0.5, 0.1], dtype=torch.float64)
    x = sample_features(dens, 50, 4000, data_rng(0, 7))  # (3, 4000, 50)
    assert x.shape == (3, 4000, 50) and x.min() >= 0 and x.max() < 1
    active = (x > 0).double().mean(dim=(1, 2))
    sigma = (dens * (1 - dens) / 200_000).sqrt()
    assert ((active - dens).abs() <= 4 * sigma + 1e-4).all(), active
    for k in range(3):
        values = x[k][x[k] > 0]
        assert values.mean().item() == pytest.approx(0.5, abs=0.01)  # Uniform[0, 1)
        assert values.var().item() == pytest.approx(1 / 12, abs=0.005)
    again = sample_features(dens, 50, 4000, data_rng(0, 7))
    assert torch.equal(x, again)
    assert not torch.equal(x, sample_features(dens, 50, 4000, data_rng(0, 8)))
    assert not torch.equal(x, sample_features(dens, 50, 4000, data_rng(1, 7)))
    assert not torch.equal(x, sample_features(dens, 50, 4000, data_rng(0, None)))


def _float64_case() -> tuple:
    """A float64 task away from the small-init regime, its step-5 batch, and autograd's
    per-instance losses and gradients under a per-instance upstream gradient ``scale``."""
    cfg = SuperpositionConfig(n=7, m=3, n_densities=4)
    task = SuperpositionTask.from_config(cfg, TrainConfig(seed=3))
    task.model.double()
    imp = task.importances.double()
    with torch.no_grad():
        task.model.W.mul_(4)  # leave the small-init regime: many active ReLUs
        task.model.b.normal_(0, 0.2, generator=torch.Generator().manual_seed(1))
    x = task.batch_at(5).double()
    W, b = task.model.W, task.model.b
    ref = ((task.model(x) - x).pow(2) * imp[:, None]).sum(-1).mean(-1)
    scale = torch.arange(1.0, 5.0, dtype=torch.float64)
    return x, W, b, imp, ref, scale, torch.autograd.grad((ref * scale).sum(), [W, b])


def _assert_equals_autograd(loss: torch.Tensor, case: tuple) -> None:
    _, W, b, _, ref, scale, g_ref = case
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-12)
    for a, c in zip(torch.autograd.grad((loss * scale).sum(), [W, b]), g_ref):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)


def test_fused_loss_and_gradient_equal_autograd_in_float64():
    case = _float64_case()
    x, W, b, imp = case[:4]
    for chunk in (0, 1, 100, 1024):  # automatic, one example, uneven chunks, whole batch
        _assert_equals_autograd(FusedToyLoss.apply(x, W, b, imp, chunk), case)


def test_gram_loss_and_gradient_equal_autograd_in_float64(monkeypatch):
    case = _float64_case()
    x, W, b, imp = case[:4]

    def fill(lo, hi, out):
        return out.copy_(x[lo:hi].transpose(1, 2))

    for floats in (1, 3 * 7 * 1024, 1 << 20):  # one instance, uneven chunks, all at once
        monkeypatch.setattr(superposition_model, "_GRAM_CHUNK_FLOATS", floats)
        _assert_equals_autograd(GramToyLoss.apply(W, b, imp, fill, 1024), case)


@pytest.mark.parametrize("n,m", [(5, 2), (6, 2)])  # GramToyLoss, FusedToyLoss
def test_stacked_data_and_loss_equal_the_single_members(n, m):
    cfg = SuperpositionConfig(n=n, m=m, n_densities=7, batch=256)
    tasks = [SuperpositionTask.from_config(cfg, TrainConfig(seed=s)) for s in range(3)]
    assert gram_is_cheaper(n, m) == (n == 5)
    fill, got = _StackedBatch(tasks, 9), torch.empty(21, n, 256)
    for lo in range(0, 21, 5):  # chunks across member boundaries
        fill(lo, min(lo + 5, 21), got[lo : lo + 5])
    want = torch.cat([t.batch_at(9) for t in tasks]).transpose(1, 2)
    assert torch.equal(got, want)  # the same numbers as each member's own stream
    params = stack_models(tasks)
    stacked = loss_function(tasks)(params, 9)
    stacked.sum().backward()
    for k, t in enumerate(tasks):
        W, b = (p.detach().clone().requires_grad_() for p in (t.model.W, t.model.b))
        single = FusedToyLoss.apply(t.batch_at(9), W, b, t.importances).sum()
        single.backward()
        torch.testing.assert_close(stacked[k], single, rtol=1e-6, atol=0)
        torch.testing.assert_close(params["W"].grad[k], W.grad, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(params["b"].grad[k], b.grad, rtol=1e-5, atol=1e-7)


def test_train_loss_is_stateless_in_step():
    task = SuperpositionTask.from_config(SuperpositionConfig(), TrainConfig(seed=0))
    a, b = task.train_loss(11).item(), task.train_loss(11).item()
    assert a == b and task.train_loss(12).item() != a


def test_tiny_run_writes_store_tables_and_report_section(tmp_path):
    rd = api.run("superposition", "intro", TINY, out=tmp_path, progress=False)
    for name in ("config.json", "metrics.parquet", "events.json", "report.html"):
        assert (rd.path / name).is_file(), name
    for table in ("instances", "features", "gram", "capacity"):
        assert (rd.path / "tables" / f"{table}.parquet").is_file(), table
    assert rd.table("phase_diagram") is None  # no importance grid in intro
    keys = set(rd.metrics()["key"])
    n, inst = TINY["n"], TINY["n_densities"]
    assert {f"dstar/{k}" for k in range(inst)} <= keys
    assert {f"dim/{i}" for i in range(n * inst)} <= keys and f"dim/{n * inst}" not in keys
    assert {"train/loss", "superposition/min_dstar", "geometry/at_fraction"} <= keys
    assert len(rd.table("features")) == n * inst
    assert len(rd.table("gram")) == n * n * inst
    assert {"w0", "w1", "dim", "polytope"} <= set(rd.table("features").columns)
    caps = rd.table("capacity")
    assert len(caps) == inst and caps["sentence"].str.startswith("m=2, n=6").all()
    ev = rd.events()
    assert ev["superposition"]["n"] == n and ev["notes"] == []
    assert "superposition" in ev["onsets"]
    html = (rd.path / "report.html").read_text()
    assert "<h2>Superposition</h2>" in html
    for needle in ("Columns W_i", "Gram matrix", "Dimensionality", "Capacity", "union bound"):
        assert needle in html, needle


def test_m_at_least_n_is_allowed_and_noted(tmp_path):
    cfg = dict(TINY, n=2, m=3)
    rd = api.run("superposition", "intro", cfg, out=tmp_path, progress=False, report=False)
    ev = rd.events()
    assert ev["notes"] and "no superposition is expected" in ev["notes"][0]
    assert ev["onsets"]["superposition"]["step"] is None
    assert "No superposition" in summarise(ev, rd.status())


def test_phase_diagram_grid_table_and_figure(tmp_path):
    cfg = {**TINY, "n_densities": 2, "n_importances": 2, "steps": 10}
    rd = api.run("superposition", "phase-diagram", cfg, out=tmp_path, progress=False, report=False)
    inst = rd.table("instances")
    assert len(inst) == 4 * 6  # 2 x 2 cells x 6 replicas (the preset's)
    assert inst.groupby("cell")["best"].sum().tolist() == [1, 1, 1, 1]
    best = inst[inst["best"]]
    assert (best["loss"].to_numpy() == inst.groupby("cell")["loss"].min().to_numpy()).all()
    phase = rd.table("phase_diagram")
    assert len(phase) == 4
    assert set(phase["phase"]) <= {"not represented", "dedicated", "superposition"}
    assert sorted(phase["relative_importance"].round(6).unique()) == [0.1, 10.0]
    assert "Phase diagram" in "".join(superposition_section(rd))


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, monkeypatch):
    straight = api.run(
        "superposition", "intro", TINY, out=tmp_path / "a", progress=False, report=False
    )
    real, calls = SuperpositionTask.train_loss, {"n": 0}

    def dying(self, step):
        calls["n"] += 1
        if calls["n"] == 26:
            raise KeyboardInterrupt
        return real(self, step)

    monkeypatch.setattr(SuperpositionTask, "train_loss", dying)
    with pytest.raises(KeyboardInterrupt):
        api.run("superposition", "intro", TINY, out=tmp_path / "b", progress=False, report=False)
    monkeypatch.setattr(SuperpositionTask, "train_loss", real)
    (killed,) = (tmp_path / "b").iterdir()
    assert open_run(killed).checkpoint_steps()[-1] == 20
    resumed = api.run("superposition", resume=killed, progress=False, report=False)
    a = straight.load_checkpoint(40)
    b = resumed.load_checkpoint(40)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    pd.testing.assert_frame_equal(straight.metrics(), resumed.metrics())


def test_capacity_api_and_cli():
    rows = capacity(3, [4, 6], [0.0, 0.9], steps=30, batch=32)
    assert list(zip(rows["n"], rows["sparsity"])) == [(4, 0.0), (4, 0.9), (6, 0.0), (6, 0.9)]
    assert (rows["represented"] <= rows["n"]).all()
    assert rows["welch_bound"].iloc[-1] == pytest.approx((3 / (3 * 5)) ** 0.5)
    runner = CliRunner()
    args = ["capacity", "--m", "3", "--n", "4", "--sparsity", "0.5", "--steps", "20"]
    r = runner.invoke(superposition_app, [*args, "--batch", "16", "--format", "json"])
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.output)  # no progress bar mixed into json or csv
    assert row["m"] == 3 and row["n"] == 4 and "sentence" in row
    # the bar, in a fresh process (rich's console is global; other tests' captures may hold it)
    cmd = [sys.executable, "-m", "phasewatch", "superposition", *args, "--batch", "16"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0 and "capacity" in r.stdout and "20/20" in r.stdout, r.stderr
    for bad, needle in (
        (["--m", "0"], "m=0 is invalid"),
        (["--n", "4,x"], "n='4,x' is invalid"),
        (["--sparsity", "1.0"], "sparsity=[1.0] is invalid"),
        (["--format", "xml"], "format='xml' is invalid"),
    ):
        r = runner.invoke(superposition_app, ["capacity", *bad])
        assert r.exit_code == 2 and r.output.strip().startswith("error: ") and needle in r.output
        assert len(r.output.strip().splitlines()) == 1


def test_per_sample_loss_averages_to_the_training_loss():
    phen = phenomena.get("superposition")
    pre = phen.presets["intro"]
    task = phen.build(pre.task, pre.train)
    per = task.per_sample_loss(7)
    assert per.shape == (pre.task.batch,) and (per >= 0).all()
    assert torch.allclose(per.mean(), task.train_loss(7), rtol=1e-5)
