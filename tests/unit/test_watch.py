"""Watcher: run directory format, online == offline warnings, CLI on its runs, bad input,
failing signals, background signals, and that watching does not change training."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from phasewatch import Watcher
from phasewatch.cli.app import app
from phasewatch.errors import ConfigError
from phasewatch.signals import base
from phasewatch.store import open_run
from phasewatch.watch.probe import cross_entropy

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import watch_mlp_grokking as mlp  # noqa: E402

TINY = ["--p", "23", "--steps", "600", "--every", "20", "--eval-every", "5", "--lr", "1e-2"]


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory) -> Path:
    """The plain-PyTorch example, tiny: 600 steps, signals every 20, metrics every 5."""
    out = tmp_path_factory.mktemp("watch") / "mlp"
    torch.set_num_threads(1)
    return mlp.main([*TINY, "--out", str(out)])


def test_watcher_writes_a_phasewatch_run_directory(mlp_run):
    rd = open_run(mlp_run)
    cfg = rd.config()
    assert cfg["phenomenon"] == "watch" and cfg["train"]["steps"] == 600
    assert rd.status()["status"] == "done" and rd.status()["step"] == 599
    m = rd.metrics()
    assert list(m.columns) == ["step", "key", "value"] and str(m["step"].dtype) == "int64"
    # the user's metrics, plus the update-Gram spectrum the Watcher logs (Xu 2026)
    updates = {"updates/gram_gap", "updates/gram_top_frac"}
    assert set(m["key"]) == {"train/loss", "val/loss", "val/acc"} | updates
    assert sorted(m[m.key == "val/acc"]["step"]) == list(range(0, 600, 5))
    sig = pd.read_parquet(mlp_run / "signals.parquet")
    assert {"geometry/norm/total", "grad/norm", "grad/noise_scale", "grad/cos_prev"} <= set(
        sig["key"]
    )
    assert sorted(sig[sig.key == "grad/norm"]["step"]) == list(range(0, 600, 20))
    events = rd.events()
    w = events["watch"]
    assert w["disabled"] == {} and w["problems"] == []
    assert w["overhead"]["user_seconds"] > 0 and w["overhead"]["percent_of_step_time"] > 0
    assert events["detect"]["target"]["key"] == "val/acc"
    assert (mlp_run / "tables" / "ews.parquet").exists()


def test_online_warnings_equal_offline_detect_on_the_same_run(mlp_run, tmp_path):
    watched = open_run(mlp_run).events()
    online = {(x["key"], x["indicator"]): x["step"] for x in watched["watch"]["warnings"]}
    assert online, "the tiny run should raise at least one warning"
    copy = shutil.copytree(mlp_run, tmp_path / "copy")
    assert open_run(copy).config()["task"]["target"]["key"] == "val/acc"
    res = CliRunner().invoke(app, ["detect", str(copy)])  # the recorded target: val/acc
    assert res.exit_code == 0, res.output
    assert "of val/acc >= " in res.output
    offline_block = open_run(copy).events()["detect"]
    offline = {
        (k, name): v[name]["step"]
        for k, v in offline_block["warnings"].items()
        for name in ("variance", "ac1")
        if v[name]["step"] is not None
    }
    assert online == offline
    assert watched["detect"]["warnings"] == offline_block["warnings"]  # thresholds too
    a = pd.read_parquet(mlp_run / "tables" / "ews.parquet")
    b = pd.read_parquet(copy / "tables" / "ews.parquet")
    pd.testing.assert_frame_equal(a, b)


def _files(run: Path) -> dict[str, tuple[int, int]]:
    return {
        str(f.relative_to(run)): (f.stat().st_mtime_ns, f.stat().st_size) for f in run.rglob("*")
    }


def _watch_with_checkpoints(out: Path, steps: int = 40, **kwargs) -> Path:
    """A watched full-batch run of the example's MLP (p = 23) saving weights every 20 steps."""
    (xtr, ytr), _ = mlp.make_data(23, 0.5, 0)
    torch.manual_seed(0)
    model = mlp.make_model(23)
    probe = (xtr[:64], ytr[:64])
    watch = Watcher(
        model,
        out=out,
        steps=steps,
        every=20,
        checkpoint_every=20,
        probe_batch=probe,
        loss_fn=cross_entropy,
        **kwargs,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(steps):
        loss = nn.functional.cross_entropy(model(xtr), ytr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        watch.step(step, {"train/loss": loss.item()})
    watch.close()
    return out


def test_measure_rebuilds_a_watched_run_from_its_factory(tmp_path):
    kw = {"factory": "watch_mlp_grokking:build", "factory_kwargs": {"p": 23}}
    out = _watch_with_checkpoints(tmp_path / "run", **kw)
    rd = open_run(out)
    assert rd.checkpoint_steps() == [0, 20]
    assert {k: rd.config()["task"][k] for k in kw} == kw
    assert not list(out.rglob("*.pkl"))
    runner = CliRunner()
    args = ["--every", "1", "--no-progress", "--factory", kw["factory"]]
    res = runner.invoke(app, ["measure", str(out), "--signals", "hessian", *args])
    assert res.exit_code == 0, res.output
    sig = pd.read_parquet(out / "signals.parquet")
    assert sorted(sig[sig.signal == "hessian"]["step"].unique()) == [0, 20]
    # the gradients measured in the loop equal those measured later on the checkpoints
    live = sig[sig.key == "grad/norm"].set_index("step")["value"]
    copy = shutil.copytree(out, tmp_path / "copy")
    (copy / "signals.parquet").unlink()
    args = ["--every", "1", "--no-progress", "--trust-run-factory"]
    res = runner.invoke(app, ["measure", str(copy), "--signals", "gradients", *args])
    assert res.exit_code == 0, res.output
    later = pd.read_parquet(copy / "signals.parquet").query("key == 'grad/norm'")
    np.testing.assert_allclose(later.set_index("step")["value"], live, rtol=1e-5)
    small = mlp.main([*TINY[:2], "--steps", "60", "--out", str(tmp_path / "small")])
    for run in (small, out):  # without and with checkpoints
        res = runner.invoke(app, ["report", str(run)])
        assert res.exit_code == 0, res.output
        page = (run / "report.html").read_text()
        assert "Watched training run" in page and "Transitions and early warnings" in page


def test_measure_without_an_importable_factory_says_what_to_pass(tmp_path, monkeypatch):
    mod = tmp_path / "mods" / "pw_tmp_factory.py"
    mod.parent.mkdir()
    mod.write_text("import watch_mlp_grokking as m\n\ndef build():\n    return m.build(23)\n")
    monkeypatch.syspath_prepend(str(mod.parent))
    gone = _watch_with_checkpoints(tmp_path / "gone", factory="pw_tmp_factory:build")
    monkeypatch.undo()  # the module is no longer importable where `measure` runs
    sys.modules.pop("pw_tmp_factory", None)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    none = _watch_with_checkpoints(tmp_path / "none")
    runner = CliRunner()
    for run, needle in ((none, "pass Watcher(..., factory="), (gone, "not importable here")):
        before = _files(run)
        res = runner.invoke(
            app, ["measure", str(run), "--signals", "llc", "--no-progress", "--trust-run-factory"]
        )
        assert res.exit_code == 2, res.output
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], res.output
        assert _files(run) == before  # nothing written
        detect = ["detect", str(run), "--target", "train/loss", "--op", "<=", "--threshold", "1"]
        for cmd in (detect, ["report", str(run)]):
            res = runner.invoke(app, cmd)
            assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    "batch",
    [
        torch.arange(6.0).reshape(3, 2),
        (torch.zeros(3, 2), torch.arange(3)),
        {"input_ids": torch.ones(3, 4, dtype=torch.long), "mask": [torch.ones(3), 2.5, None]},
    ],
)
def test_probe_batch_round_trips_through_safetensors(tmp_path, batch):
    from phasewatch.watch.probe import load_probe, save_probe

    watch = Watcher(_model(), out=tmp_path / "r", signals=["geometry"])
    save_probe(watch.rd, batch)
    watch.close()
    back = load_probe(open_run(tmp_path / "r"))
    assert type(back) is type(batch)
    flat = lambda b: (  # noqa: E731
        [b]
        if torch.is_tensor(b) or not isinstance(b, (list, tuple, dict))
        else [x for v in (b.values() if isinstance(b, dict) else b) for x in flat(v)]
    )
    for a, b in zip(flat(batch), flat(back), strict=True):
        assert torch.equal(a, b) if torch.is_tensor(a) else a == b


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


BATCH = (torch.randn(32, 4, generator=torch.Generator().manual_seed(1)), torch.arange(32) % 3)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"every": 0}, "every"),
        ({"every": -5}, "every"),
        ({"steps": 0}, "steps"),
        ({"signals": ["nope"]}, "signal"),
        ({"loss_fn": None}, "probe_batch/loss_fn"),
        ({"loss_fn": lambda m, b: "x"}, "loss_fn"),
        ({"loss_fn": lambda m, b: 1 / 0}, "loss_fn"),
        ({"target": "val/acc"}, "target"),
        ({"factory": "no colon"}, "factory"),
        ({"factory": "no_such_module_xyz:build"}, "factory=.*not importable"),
        ({"factory_kwargs": {"f": object()}}, "factory_kwargs"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(tmp_path, kwargs, field):
    args = {"out": tmp_path / "r", "probe_batch": BATCH, "loss_fn": cross_entropy, **kwargs}
    with pytest.raises(ValueError, match=field):
        Watcher(_model(), **args)
    assert not (tmp_path / "r").exists()  # nothing written


def test_model_without_trainable_parameters_and_taken_out_path_are_refused(tmp_path):
    frozen = _model().requires_grad_(False)
    with pytest.raises(ConfigError, match="model=.*allowed: a model with parameters that"):
        Watcher(frozen, out=tmp_path / "a", signals=["geometry"])
    Watcher(_model(), out=tmp_path / "b", signals=["geometry"]).close()
    with pytest.raises(ConfigError, match=r"out=.*allowed: a new or empty directory.*run"):
        Watcher(_model(), out=tmp_path / "b", signals=["geometry"])


def test_step_never_raises_on_bad_input_and_reports_it(tmp_path, caplog):
    watch = Watcher(
        _model(), out=tmp_path / "r", steps=10, every=2, probe_batch=BATCH, loss_fn=cross_entropy
    )
    with caplog.at_level(logging.WARNING, logger="phasewatch.watch"):
        watch.step(0, {"a": 1.0, "b": float("nan"), "c": "text", "d": torch.tensor(2.0)})
        watch.step(1, {"a": float("inf")})
        watch.step(0, {"a": 3.0})  # goes back
        watch.step("two", {"a": 3.0})
        watch.step(2, {"a": 2.0})
        watch.step(2, {"a": 5.0, "e": 1.0})  # a repeated at step 2; e added to it
    block = watch.close()
    m = open_run(tmp_path / "r").metrics()
    assert sorted(zip(m["step"], m["key"], m["value"])) == [
        (0, "a", 1.0),
        (0, "d", 2.0),
        (2, "a", 2.0),
        (2, "e", 1.0),
    ]
    text = " | ".join(block["problems"])
    for needle in (
        "'b' = nan",
        "'c' is not a number",
        "'a' = inf",
        "must not decrease",
        "step='two'",
        "'a' logged twice",
    ):
        assert needle in text, needle
    assert len(caplog.records) >= 6


def _register_broken(monkeypatch, name: str) -> list[int]:
    """Register a signal ``name`` that raises on every call; returns the steps it saw."""
    calls: list[int] = []

    def broken(probe, settings, *, generator):
        calls.append(probe.step)
        raise RuntimeError("boom")

    monkeypatch.setitem(base._REGISTRY, name, base.Signal(name, broken, base.NoSettings))
    return calls


def test_a_failing_signal_is_disabled_and_reported_while_others_go_on(tmp_path, monkeypatch):
    calls = _register_broken(monkeypatch, "broken")
    watch = Watcher(
        _model(),
        out=tmp_path / "r",
        every=1,
        signals=["broken", "geometry"],
        probe_batch=BATCH,
        loss_fn=cross_entropy,
    )
    for step in range(4):
        watch.step(step)
    block = watch.close()
    assert calls == [0] and block["disabled"] == {"broken": "step 0: RuntimeError: boom"}
    sig = pd.read_parquet(tmp_path / "r" / "signals.parquet")
    assert sorted(sig[sig.key == "geometry/norm/total"]["step"]) == [0, 1, 2, 3]


def test_a_failing_background_signal_is_disabled_in_submission_order(tmp_path, monkeypatch):
    calls = _register_broken(monkeypatch, "hessian")
    watch = Watcher(
        _model(),
        out=tmp_path / "r",
        every=5,
        expensive_every=10,
        signals=["hessian", "geometry"],
        probe_batch=BATCH,
        loss_fn=cross_entropy,
        background=True,
    )
    _train(watch)
    block = watch.close()
    assert calls == [0] and block["disabled"] == {"hessian": "step 0: RuntimeError: boom"}
    assert block["signals"]["hessian"]["where"] == "background"


def _train(watch: Watcher | None, steps: int = 30, model: nn.Module | None = None) -> nn.Module:
    model = watch.model if watch is not None else model
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = BATCH
    for step in range(steps):
        loss = nn.functional.cross_entropy(nn.functional.dropout(model(x), 0.2), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if watch is not None:
            watch.step(step, {"train/loss": loss.item()})
    return model


def test_watching_does_not_change_training(tmp_path):
    plain = _model()
    torch.manual_seed(5)  # the dropout masks come from the global RNG
    _train(None, model=plain)
    signals = ["geometry", "gradients", "hessian", "llc"]
    settings = {"llc": {"chains": 1, "draws": 3, "burn_in": 1}, "hessian": {"top_k": 1}}
    for background in (False, True):
        watch = Watcher(
            _model(),
            out=tmp_path / f"r{background}",
            every=5,
            expensive_every=10,
            signals=signals,
            settings=settings,
            probe_batch=BATCH,
            loss_fn=cross_entropy,
            background=background,
        )
        torch.manual_seed(5)
        watched = _train(watch)
        assert watch.close()["disabled"] == {}
        for a, b in zip(plain.parameters(), watched.parameters()):
            assert torch.equal(a, b)
        assert watched.training and all(p.grad is not None for p in watched.parameters())


def test_background_signals_measure_every_queued_checkpoint(tmp_path):
    settings = {"llc": {"chains": 1, "draws": 3, "burn_in": 1}}
    kw = dict(
        every=5,
        expensive_every=10,
        signals=["geometry", "llc"],
        settings=settings,
        probe_batch=BATCH,
        loss_fn=cross_entropy,
    )
    inline = Watcher(_model(), out=tmp_path / "inline", **kw)
    _train(inline)
    inline.close()
    bg = Watcher(_model(), out=tmp_path / "bg", background=True, **kw)
    _train(bg)
    block = bg.close()  # waits for the thread, whatever its speed
    assert block["signals"]["llc"]["where"] == "background"
    assert block["checkpoints"] == [] and block["overhead"]["background_seconds"] > 0
    a = pd.read_parquet(tmp_path / "inline" / "signals.parquet")
    b = pd.read_parquet(tmp_path / "bg" / "signals.parquet")
    a, b = (t[t.signal == "llc"].sort_values(["step", "key"]) for t in (a, b))
    assert sorted(b["step"].unique()) == [0, 10, 20]
    np.testing.assert_allclose(b["value"].to_numpy(), a["value"].to_numpy(), rtol=1e-4)
    assert json.loads((tmp_path / "bg" / "events.json").read_text())["watch"]["disabled"] == {}


class _Locked(nn.Module):
    """A model that cannot be deep-copied (it holds a lock)."""

    def __init__(self) -> None:
        super().__init__()
        import threading

        self.net, self.lock = _model(), threading.Lock()

    def forward(self, x):
        return self.net(x)


def test_background_falls_back_inline_when_the_model_cannot_be_copied(tmp_path):
    watch = Watcher(
        _Locked(),
        out=tmp_path / "r",
        every=5,
        expensive_every=10,
        signals=["hessian"],
        settings={"hessian": {"top_k": 1}},
        probe_batch=BATCH,
        loss_fn=cross_entropy,
        background=True,
    )
    _train(watch, steps=21)
    block = watch.close()
    assert any("background signals off" in p for p in block["problems"])
    sig = pd.read_parquet(tmp_path / "r" / "signals.parquet")
    assert sorted(sig[sig.signal == "hessian"]["step"].unique()) == [0, 10, 20]


def test_a_probe_batch_safetensors_cannot_hold_is_reported_not_raised(tmp_path):
    watch = Watcher(_model(), out=tmp_path / "r", signals=["geometry"], probe_batch={"x": object()})
    block = watch.close()
    assert any("probe batch not stored" in p and "object" in p for p in block["problems"])
    assert not (tmp_path / "r" / "watch" / "probe.safetensors").exists()


# ---- WatchConfig ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"out": ""}, "out=''.*allowed: a path"),
        ({"steps": 0}, "steps=0.*allowed: None or an integer >= 1"),
        ({"steps": True}, "steps=True.*allowed: None or an integer >= 1"),
        ({"every": 2.5}, "every=2.5.*allowed: an integer >= 1"),
        ({"expensive_every": 0}, "expensive_every=0.*allowed: None or an integer >= 1"),
        ({"checkpoint_every": -1}, "checkpoint_every=-1.*allowed: None or an integer >= 1"),
        ({"signals": "geometry"}, "signals='geometry'.*allowed: a list or tuple"),
        ({"signals": ["nope"]}, "signal='nope'.*allowed: .*geometry"),
        ({"settings": {"llc": {}}}, "settings given for signal.*llc.*allowed: geometry"),
        ({"background": "yes"}, "background='yes'.*allowed: True or False"),
        ({"target": "val/acc"}, "target='val/acc'.*allowed: None or a .*Target"),
        ({"detect": {"alpha": 0.1}}, "detect=.*allowed: None or a .*DetectConfig"),
        ({"seed": 1.5}, "seed=1.5.*allowed: an integer"),
        ({"hparams": {"f": object()}}, "hparams=.*allowed: None or a dict of JSON values"),
        ({"factory": "no colon"}, "factory='no colon'.*allowed: an import string"),
        ({"factory_kwargs": [1]}, r"factory_kwargs=\[1\].*allowed: None or a dict"),
    ],
)
def test_watch_config_rejects_bad_values_naming_the_field(tmp_path, fields, message):
    from phasewatch.watch import WatchConfig

    with pytest.raises(ConfigError, match=message):
        WatchConfig(**{"out": tmp_path / "r", "signals": ["geometry"], **fields})
    with pytest.raises(ConfigError, match=message):  # the same check through the Watcher
        Watcher(_model(), **{"out": tmp_path / "r", "signals": ["geometry"], **fields})
    assert not (tmp_path / "r").exists()


def test_watcher_refuses_unknown_keywords_listing_the_allowed_ones(tmp_path):
    with pytest.raises(ConfigError, match="unknown argument.*evry.*allowed: out, steps") as e:
        Watcher(_model(), out=tmp_path / "r", evry=5)
    for name in ("every", "checkpoint_every", "factory", "probe_batch", "loss_fn", "on_warning"):
        assert name in str(e.value)
    with pytest.raises(ConfigError, match="out is missing"):
        Watcher(_model(), every=5)
    with pytest.raises(ConfigError, match="config=.*allowed: a WatchConfig"):
        Watcher(_model(), config=42, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_config_and_keywords_give_the_same_stored_config(tmp_path):
    import dataclasses

    from phasewatch.detect.transitions import Target
    from phasewatch.watch import WatchConfig

    fields = dict(
        steps=40,
        every=10,
        expensive_every=20,
        signals=["geometry", "gradients"],
        checkpoint_every=20,
        target=Target("train/loss", 0.5, "<="),
        seed=3,
        hparams={"lr": 0.1},
        factory="watch_mlp_grokking:build",
        factory_kwargs={"p": 23},
    )
    objects = {"probe_batch": BATCH, "loss_fn": cross_entropy}
    by_kwargs = Watcher(_model(), out=tmp_path / "a", **fields, **objects)
    cfg = WatchConfig(out=tmp_path / "b", **fields)
    by_config = Watcher(_model(), config=cfg, **objects)
    override = WatchConfig(out=tmp_path / "c", **{**fields, "every": 7})
    mixed = Watcher(_model(), override, out=tmp_path / "c", every=10, **objects)
    assert by_config.config is cfg and cfg.signals == ("geometry", "gradients")
    for w, name in ((by_kwargs, "a"), (mixed, "c")):
        assert w.config == dataclasses.replace(cfg, out=tmp_path / name)
    stored = [w.close() and open_run(w.rd.path).config() for w in (by_kwargs, by_config, mixed)]
    assert stored[0] == stored[1] == stored[2]
    assert stored[0]["task"]["user"] == {"lr": 0.1} and stored[0]["train"]["seed"] == 3
    assert stored[0]["train"]["expensive_every"] == 20
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.every = 5


def test_a_dict_as_config_is_taken_as_hparams(tmp_path):
    """``config=`` held the user's hyperparameters before WatchConfig; it still does."""
    watch = Watcher(_model(), config={"lr": 0.1}, out=tmp_path / "r", signals=["geometry"])
    assert watch.config.hparams == {"lr": 0.1}
    watch.close()
    assert open_run(tmp_path / "r").config()["task"]["user"] == {"lr": 0.1}


def test_without_a_probe_batch_the_default_signals_that_need_none_are_measured(tmp_path, caplog):
    """``Watcher(model, out=..., every=5)`` measures the default signals that need no
    probe batch (``geometry``) and says which it left out; asking for one by name raises."""
    with caplog.at_level(logging.WARNING, logger="phasewatch.watch"):
        watch = Watcher(_model(), out=tmp_path / "r", every=5)
    assert set(watch.resolved) == {"geometry"}
    assert "signals ['gradients'] left out" in caplog.text
    for step in range(11):
        watch.step(step, {"train/loss": 1.0 / (step + 1)})
    block = watch.close()
    assert set(block["signals"]) == {"geometry"}
    assert any("['gradients'] left out" in p for p in block["problems"])
    sig = pd.read_parquet(tmp_path / "r" / "signals.parquet")
    assert sorted(set(sig.query("key == 'geometry/norm/total'")["step"])) == [0, 5, 10]
    with pytest.raises(ConfigError, match=r"probe_batch/loss_fn.*\['gradients'\] need them"):
        Watcher(_model(), out=tmp_path / "s", signals=["geometry", "gradients"])
    assert not (tmp_path / "s").exists()


def test_change_points_are_computed_at_close_only_when_asked(tmp_path):
    """By default ``close()`` leaves change points to ``phasewatch detect`` (their library
    costs ~1 s of imports); ``change_points=True`` computes those of ``detect``."""
    from phasewatch.detect.changepoints import ChangePointConfig, change_points
    from phasewatch.detect.run import DetectConfig
    from phasewatch.detect.transitions import run_series
    from phasewatch.store.signals import read_signals

    plain = open_run(_watch_with_checkpoints(tmp_path / "a", steps=60))
    asked = open_run(_watch_with_checkpoints(tmp_path / "b", steps=60, change_points=True))
    a, b = plain.events(), asked.events()
    assert a["detect"]["change_points"] == {} and a["watch"]["change_points"] is False
    cfg = ChangePointConfig(penalty=DetectConfig().penalty)
    series = run_series(asked.metrics(), read_signals(asked))
    want = {k: change_points(s.index.to_numpy(), s.to_numpy(), cfg) for k, s in series.items()}
    assert b["detect"]["change_points"] == want and b["watch"]["change_points"] is True
    assert any(want.values())  # the loss of a training run does change
    o = a["watch"]["overhead"]
    assert o["user_cpu_seconds"] > 0 and 0 < o["loop_cpu_seconds"] and o["percent_of_step_cpu"] > 0


def test_a_forecaster_watches_the_run_and_forecasts_once(tmp_path):
    import math

    from phasewatch.detect.forecast.model import Forecaster

    model_dir = tmp_path / "model"
    Forecaster(
        features=("train/loss|last",), mean=(0.0,), scale=(1.0,), coef=(1.0,), intercept=0.0,
        threshold=0.5, alpha=0.05, target={"key": "val/acc", "threshold": 0.99, "op": ">="},
        rule={"event": "", "offset_frac": 0.25}, feature_cfg={"window": 10, "min_points": 8},
    ).save(model_dir)  # fmt: skip
    model = torch.nn.Linear(2, 2)
    with Watcher(model, out=tmp_path / "run", steps=40, every=5, signals=(),
                 forecaster=model_dir) as watch:  # fmt: skip
        for step in range(40):
            watch.step(step, {"train/loss": 2.0 if step <= 10 else 9.0})
    block = open_run(tmp_path / "run").events()["watch"]["forecast"]
    assert block["decision_step"] == 10 and block["step"] == 10  # 25% of 40 steps
    assert block["score"] == pytest.approx(1 / (1 + math.exp(-2.0)))  # nothing after step 10
    assert block["alarm"] and block["model"] == str(model_dir)
    with pytest.raises(ConfigError, match="forecaster"):
        Watcher(model, out=tmp_path / "r2", steps=40, signals=(), forecaster=tmp_path / "none")
    assert not (tmp_path / "r2").exists()
    with pytest.raises(ConfigError, match="forecaster"):
        Watcher(model, out=tmp_path / "r3", signals=(), forecaster=model_dir)  # no steps
