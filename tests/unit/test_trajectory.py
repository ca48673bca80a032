"""Trajectory signals: History, the runner's trajectory stage (needs, causality,
not-applicable), the ``samples`` and ``loss_spectrum`` signals, and the Watcher path."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_configs import GROKKING
from torch import nn

from phasewatch import Watcher, api
from phasewatch.errors import ConfigError
from phasewatch.signals import base
from phasewatch.signals.base import Probe
from phasewatch.signals.history import with_needs
from phasewatch.signals.precursors.loss_spectrum import LossSpectrumSettings, loss_spectrum
from phasewatch.signals.precursors.samples import SamplesSettings, samples, stored_subset
from phasewatch.signals.trajectory import History, NotApplicable, trajectory, truncate
from phasewatch.store import open_run
from phasewatch.store.run import tidy
from phasewatch.store.signals import read_signals, read_signals_json
from phasewatch.watch.probe import cross_entropy

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import watch_mlp_grokking as mlp  # noqa: E402

# the tiny run logs train/loss at 9 steps (0, 5, ..., 40): a spectrum on few points
SPECTRUM = {"low_bins": 1, "min_points": 5}
T = 20  # the step after which the causality test rewrites the future


def _curve(y: np.ndarray, spacing: int = 5, key: str = "train/loss") -> History:
    steps = np.arange(len(y)) * spacing
    rows = [(int(s), key, float(v)) for s, v in zip(steps, y)]
    return History(step=int(steps[-1]), metrics=tidy(rows))


def _spectrum(history: History, **kw) -> dict[str, float]:
    return loss_spectrum(history, LossSpectrumSettings(**kw), generator=torch.Generator())


# ---- History ------------------------------------------------------------------------------
def test_history_is_cut_at_t_and_says_what_it_needs():
    metrics = tidy([(s, "train/loss", 1.0 / (1 + s)) for s in range(0, 50, 10)])
    table = pd.DataFrame({"step": [0, 0, 30, 40], "sample": [0, 1, 0, 1], "loss": [1, 2, 3, 4.0]})
    loaded = []
    h = truncate(30, metrics, {"per_sample_loss": table, "none": None}, [0, 20, 40], loaded.append)
    assert h.series("train/loss").index.tolist() == [0, 10, 20, 30]
    assert h.table("per_sample_loss")["step"].max() == 30 and h.checkpoints == (0, 20)
    h.load(20)
    assert loaded == [20]
    with pytest.raises(ValueError, match="no checkpoint at step 40 in the history up to 30"):
        h.load(40)
    with pytest.raises(NotApplicable, match="needs the metric 'val/acc', not logged by step 30"):
        h.series("val/acc")
    with pytest.raises(NotApplicable, match="needs the table 'nope'"):
        h.table("nope")
    with pytest.raises(NotApplicable, match="needs the run's checkpoints"):
        History(step=5, metrics=metrics).load(0)
    # a History built with rows after t still shows none of them
    raw = History(step=10, metrics=metrics, tables={"per_sample_loss": table})
    assert raw.series("train/loss").index.max() == 10
    assert raw.table("per_sample_loss")["step"].tolist() == [0, 0]


def test_needs_come_first_once():
    assert with_needs(["geometry", "loss_spectrum"]) == ["geometry", "loss_spectrum"]

    @trajectory("test_needs_a", needs=("samples",))
    def a(history, settings, *, generator):
        return {}

    try:
        assert with_needs(["test_needs_a", "samples", "geometry"]) == [
            "samples",
            "test_needs_a",
            "geometry",
        ]
    finally:
        base._REGISTRY.pop("test_needs_a")


# ---- loss_spectrum: known answers ---------------------------------------------------------
@pytest.mark.parametrize("k0,phase", [(3, 0.0), (5, 0.7), (7, 2.0)])
def test_loss_spectrum_of_a_sinusoid_is_its_amplitude_at_its_bin(k0, phase):
    n = np.arange(128)
    y = 1.5 + 0.3 * np.sin(2 * np.pi * k0 * n / 128 + phase)  # a = 0.3 nats, k0 cycles
    out = _spectrum(_curve(y, spacing=5), window=128)
    assert out["loss_spectrum/low_freq_amp"] == pytest.approx(0.3, rel=5e-3)
    assert out["loss_spectrum/low_freq_period"] == pytest.approx(128 * 5 / k0)
    assert out["loss_spectrum/points"] == 128
    assert out["loss_spectrum/high_low_ratio"] < 1e-3  # Hann: bins k0 ± 1 are low too
    # no detrending needed for a pure sinusoid: exact to rounding with the mean removed
    exact = _spectrum(_curve(y), window=128, detrend_degree=0)
    assert exact["loss_spectrum/low_freq_amp"] == pytest.approx(0.3, rel=1e-9)


def test_loss_spectrum_of_a_smooth_monotone_curve_is_near_zero():
    n = np.arange(128)
    smooth = 0.1 + 2.0 * np.exp(-n / 60)  # range 2 nats
    assert _spectrum(_curve(smooth), window=128)["loss_spectrum/low_freq_amp"] < 2e-3 * 2.0
    # the same trend with an oscillation on top: the oscillation's amplitude comes back
    wavy = smooth + 0.05 * np.sin(2 * np.pi * 5 * n / 128)
    assert _spectrum(_curve(wavy), window=128)["loss_spectrum/low_freq_amp"] == pytest.approx(
        0.05, rel=0.05
    )
    noise = np.random.default_rng(0).normal(0, 0.05, 128)
    assert _spectrum(_curve(smooth + noise), window=128)["loss_spectrum/high_low_ratio"] > 3


def test_loss_spectrum_window_anchor_and_not_applicable():
    n = np.arange(300)
    y = 1 + 0.2 * np.sin(2 * np.pi * 4 * n / 64) * (n < 64)  # oscillates in the first 64 only
    start = _spectrum(_curve(y), window=64, min_points=32)
    end = _spectrum(_curve(y), window=64, min_points=32, anchor="end")
    assert start["loss_spectrum/low_freq_amp"] == pytest.approx(0.2, rel=1e-2)
    assert end["loss_spectrum/low_freq_amp"] < 1e-9
    with pytest.raises(NotApplicable, match="needs >= 32 logged points of 'train/loss', has 9"):
        _spectrum(_curve(y[:9]))
    with pytest.raises(NotApplicable, match="needs the metric 'val/loss'"):
        _spectrum(_curve(y), key="val/loss")
    with pytest.raises(ConfigError, match="min_points=5 is invalid"):
        LossSpectrumSettings(min_points=5)


# ---- samples ------------------------------------------------------------------------------
def _probe(losses: torch.Tensor | None, step: int = 3) -> Probe:
    model = nn.Linear(1, 1)
    per_sample = (lambda: losses) if losses is not None else None
    mean = losses.mean() if losses is not None else torch.zeros(())
    return Probe(model, loss=lambda: mean, n=10, step=step, per_sample_loss=per_sample)


def test_samples_quantiles_and_a_fixed_capped_subset():
    losses = torch.rand(1000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    m = samples(_probe(losses), SamplesSettings(max_samples=50), generator=torch.Generator())
    x = losses.numpy()
    assert m.values["samples/loss_q10"] == pytest.approx(np.quantile(x, 0.1))
    assert m.values["samples/loss_q50"] == pytest.approx(np.median(x))
    assert m.values["samples/loss_q90"] == pytest.approx(np.quantile(x, 0.9))
    assert m.values["samples/loss_std"] == pytest.approx(x.std(ddof=1))
    table = m.tables["per_sample_loss"]
    assert list(table.columns) == ["step", "sample", "loss"] and len(table) == 50
    assert (table["step"] == 3).all() and table["sample"].is_unique
    np.testing.assert_array_equal(table["loss"], x[table["sample"]])
    np.testing.assert_array_equal(table["sample"], stored_subset(1000, 50, 0))  # same each step
    small = samples(_probe(losses[:7]), SamplesSettings(), generator=torch.Generator())
    assert small.tables["per_sample_loss"]["sample"].tolist() == list(range(7))
    with pytest.raises(NotApplicable, match="needs per-sample losses of the probe batch"):
        samples(_probe(None), SamplesSettings(), generator=torch.Generator())
    with pytest.raises(ConfigError, match="max_samples=0 is invalid"):
        SamplesSettings(max_samples=0)


# ---- the runner: causality ----------------------------------------------------------------
def _history_probe(history, settings, *, generator):
    """What the runner's history shows at t: table rows, their last step and mean, the
    newest checkpoint's weight norm (a test signal that reads everything a History holds)."""
    table = history.table("per_sample_loss")
    last = history.checkpoints[-1]
    norm = sum(float(v.double().norm() ** 2) for v in history.load(last).values()) ** 0.5
    return {
        "test/rows": len(table),
        "test/last_step": float(table["step"].max()),
        "test/mean_loss": float(table["loss"].mean()),
        "test/ckpt_norm": norm,
        "test/metric_steps": float(history.metrics["step"].max()),
    }


SIGNALS = ["samples", "loss_spectrum", "test_history_probe"]


@pytest.fixture(scope="module", autouse=True)
def history_probe():
    """Register the test signal ``test_history_probe`` for this module's tests only."""
    trajectory("test_history_probe", needs=("samples",))(_history_probe)
    yield
    base._REGISTRY.pop("test_history_probe")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    tiny = GROKKING | {"threads": 1}
    return api.run("grokking", "quick", tiny, out=out, progress=False, report=False)


@pytest.fixture(scope="module")
def measured(tiny_run, tmp_path_factory):
    dst = tmp_path_factory.mktemp("measured") / "run"
    shutil.copytree(tiny_run.path, dst)
    api.measure(dst, SIGNALS, settings={"loss_spectrum": SPECTRUM}, progress=False)
    return dst


def _alter_future(run: Path, how: str) -> None:
    """Rewrite everything the run logged after step T (metrics, per-sample losses,
    checkpoints)."""
    rd = open_run(run)
    m = rd.metrics()
    late = m["step"] > T
    if how == "noise":
        rng = np.random.default_rng(0)
        m.loc[late, "value"] = m.loc[late, "value"] + rng.normal(0, 1, late.sum())
    elif how == "reverse":
        m.loc[late, "value"] = m.loc[late, "value"].to_numpy()[::-1]
    else:
        m = m[~late]
    rd.write_metrics(m)
    table = rd.table("per_sample_loss")
    table.loc[table["step"] > T, "loss"] *= 10.0
    rd.write_table("per_sample_loss", table)
    for step in rd.checkpoint_steps():
        if step > T and how == "truncate":
            rd.checkpoint_path(step).unlink()
        elif step > T:
            rd.save_checkpoint(step, {k: v + 1.0 for k, v in rd.load_checkpoint(0).items()})


@pytest.mark.parametrize("how", ["noise", "reverse", "truncate"])
def test_trajectory_values_up_to_t_ignore_the_future(measured, tmp_path, how):
    before = read_signals(open_run(measured))
    traj = before[before["signal"].isin(["loss_spectrum", "test_history_probe"])]
    assert set(traj["step"]) >= {20, 30, 40} and "loss_spectrum/low_freq_amp" in set(traj["key"])
    copy = shutil.copytree(measured, tmp_path / "copy")
    _alter_future(copy, how)
    # keep the stored samples (their altered rows after T stay in the table); re-measure
    # the trajectory signals on the altered logs
    kept = before[before["signal"] == "samples"]
    kept.to_parquet(copy / "signals.parquet")
    after = api.measure(copy, SIGNALS, settings={"loss_spectrum": SPECTRUM}, progress=False)
    key = ["step", "key", "signal"]
    old = traj.set_index(key)["value"]
    new = after[after["signal"].isin(old.index.get_level_values("signal"))].set_index(key)
    new = new["value"]
    early = old[old.index.get_level_values("step") <= T]
    pd.testing.assert_series_equal(new.loc[early.index], early, check_exact=True)
    if how != "truncate":  # the perturbation does reach the later values
        late = old.index[old.index.get_level_values("step") > T]
        assert (new.loc[late] != old.loc[late]).any()
    # from scratch (samples recomputed from the altered checkpoints too): same up to T
    for f in ("signals.parquet", "signals.json", "tables/per_sample_loss.parquet"):
        (copy / f).unlink()
    fresh = api.measure(copy, SIGNALS, settings={"loss_spectrum": SPECTRUM}, progress=False)
    fresh = fresh.set_index(key)["value"]
    everything = before.set_index(key)["value"]
    early = everything[everything.index.get_level_values("step") <= T]
    pd.testing.assert_series_equal(fresh.loc[early.index], early, check_exact=True)


def test_needs_are_measured_first_and_reruns_skip(measured, tmp_path, capsys):
    copy = shutil.copytree(measured, tmp_path / "copy")
    for f in ("signals.parquet", "signals.json", "tables/per_sample_loss.parquet"):
        (copy / f).unlink()
    table = api.measure(copy, ["test_history_probe"], progress=False)  # samples added
    assert set(table["signal"]) == {"samples", "test_history_probe"}
    probe = table[table["signal"] == "test_history_probe"].pivot(
        index="step", columns="key", values="value"
    )
    n = int(0.5 * 17 * 17)  # the tiny run's training pairs, all stored (< 512)
    assert probe["test/last_step"].tolist() == [0, 10, 20, 30, 40]  # includes step t itself
    assert probe["test/rows"].tolist() == [n, 2 * n, 3 * n, 4 * n, 5 * n]
    mtime = (copy / "signals.parquet").stat().st_mtime_ns
    again = api.measure(copy, ["test_history_probe"], progress=False)
    assert (copy / "signals.parquet").stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(again, table)
    assert capsys.readouterr().out == ""


class _NoPerSample:
    """A task without ``per_sample_loss`` (as superposition or base64 tasks)."""

    def __init__(self, task):
        self._task = task

    def __getattr__(self, name):
        if name == "per_sample_loss":
            raise AttributeError(name)
        return getattr(self._task, name)


def _no_per_sample(rd):
    return _NoPerSample(api.build_task(rd))


def test_not_applicable_is_one_warning_line_and_the_others_go_on(measured, tmp_path, capsys):
    from phasewatch.signals.runner import measure

    copy = shutil.copytree(measured, tmp_path / "copy")
    for f in ("signals.parquet", "signals.json", "tables/per_sample_loss.parquet"):
        (copy / f).unlink()
    names = ["samples", "geometry", "loss_spectrum", "test_history_probe"]
    table = measure(copy, names, build_task=_no_per_sample, progress=False)
    assert set(table["signal"]) == {"geometry"}  # loss_spectrum needs 32 points: has 9
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        "warning: step 0: samples: not applicable: needs per-sample losses of the probe batch "
        "(a task with per_sample_loss(step), or a Watcher loss_fn returning (n,) losses)",
        "warning: step 0: loss_spectrum: not applicable: needs >= 32 logged points of "
        "'train/loss', has 1 by step 0",
        "warning: step 0: test_history_probe: not applicable: needs the table "
        "'per_sample_loss' (measure its signal on the checkpoints up to step 0 first)",
    ]
    warnings = read_signals_json(open_run(copy))["warnings"]
    assert len(warnings) == 3 * 5 and {w["signal"] for w in warnings} == set(names) - {"geometry"}
    measure(copy, names, build_task=_no_per_sample, progress=False)  # not doubled on rerun
    assert len(read_signals_json(open_run(copy))["warnings"]) == 3 * 5


# ---- the Watcher --------------------------------------------------------------------------
def _watch(out: Path, loss_fn=cross_entropy, steps: int = 60) -> Path:
    """A plain PyTorch loop (the example's MLP, p = 23) watched with trajectory signals."""
    (xtr, ytr), _ = mlp.make_data(23, 0.5, 0)
    torch.manual_seed(0)
    model = mlp.make_model(23)
    watch = Watcher(
        model,
        out=out,
        steps=steps,
        every=20,
        checkpoint_every=20,
        signals=["samples", "loss_spectrum"],
        settings={"loss_spectrum": {"low_bins": 2, "min_points": 8}},
        probe_batch=(xtr[:64], ytr[:64]),
        loss_fn=loss_fn,
        factory="watch_mlp_grokking:build",
        factory_kwargs={"p": 23},
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(steps):
        loss = nn.functional.cross_entropy(model(xtr), ytr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        watch.step(step, {"train/loss": loss.item()})
    block = watch.close()
    assert block["disabled"] == {} and block["problems"] == []
    return out


def test_watcher_measures_trajectory_signals_online(tmp_path):
    torch.set_num_threads(1)
    run = _watch(tmp_path / "run")
    sig = read_signals(open_run(run))
    spec = sig[sig["signal"] == "loss_spectrum"].pivot(index="step", columns="key", values="value")
    assert spec.index.tolist() == [20, 40]  # step 0 had 1 point: not applicable
    assert spec["loss_spectrum/points"].tolist() == [21, 41]
    assert sorted(sig[sig["key"] == "samples/loss_q50"]["step"]) == [0, 20, 40]
    per_sample = pd.read_parquet(run / "tables" / "per_sample_loss.parquet")
    assert list(per_sample.columns[:3]) == ["step", "sample", "loss"] and len(per_sample) == 3 * 64
    (w,) = read_signals_json(open_run(run))["warnings"]
    assert w["step"] == 0 and w["message"].startswith("loss_spectrum: not applicable: needs >= 8")
    # offline on the stored run: the same values (the online history was the same logs)
    copy = shutil.copytree(run, tmp_path / "copy")
    (copy / "signals.parquet").unlink()
    offline = api.measure(
        copy,
        ["loss_spectrum"],
        factory="watch_mlp_grokking:build",
        settings={"loss_spectrum": {"low_bins": 2, "min_points": 8}},
        progress=False,
    )
    both = offline.merge(sig, on=["step", "key", "signal", "settings"], suffixes=("_off", "_on"))
    assert len(both) == len(offline) > 0
    np.testing.assert_allclose(both["value_off"], both["value_on"], rtol=1e-12)


def test_watcher_not_applicable_is_a_warning_not_a_disabled_signal(tmp_path):
    def mean_loss(model, batch):
        return cross_entropy(model, batch).mean()

    run = _watch(tmp_path / "run", loss_fn=mean_loss, steps=41)
    warnings = read_signals_json(open_run(run))["warnings"]
    assert [w["step"] for w in warnings if w["signal"] == "samples"] == [0, 20, 40]
    assert set(read_signals(open_run(run))["signal"]) == {"loss_spectrum"}
    events = json.loads((run / "events.json").read_text())
    assert events["watch"]["disabled"] == {}
