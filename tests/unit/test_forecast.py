"""The forecasting benchmark on runs with a planted answer: a precursor that rises before
every transition (and never in null runs) must reach AUROC ~1; pure noise must not beat
chance beyond its bootstrap interval; features at the decision step depend on nothing
logged after it; a fitted forecaster round-trips through JSON and scores unseen runs;
bad input exits 2 with one line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from phasewatch import api
from phasewatch.cli.app import app
from phasewatch.detect.forecast.features import DecisionRule, FeatureConfig, run_features
from phasewatch.detect.forecast.model import Forecaster
from phasewatch.detect.transitions import Target
from phasewatch.errors import ConfigError
from phasewatch.store import create_run, open_run

STEPS = np.arange(0, 2001, 20)
RULE = DecisionRule("memorisation", 0.3)  # decision at 100 + 600 = step 700


def _write(root, name: str, seed: int, onset: int | None, preset: str):
    rng = np.random.default_rng(seed)
    rise = np.clip((STEPS - 100) / 400, 0, None) if onset else 0 * STEPS
    series = {
        "train/acc": np.where(STEPS >= 100, 1.0, 0.2),
        "test/acc": (0.1 + 0.9 * (STEPS >= onset)) if onset else 0.1 + 0 * STEPS,
        "precursor/level": rise + rng.normal(0, 0.05, len(STEPS)),
        "noise/z": rng.normal(0, 1, len(STEPS)),
    }
    cfg = {"phenomenon": "synthetic", "preset": preset, "task": {}, "train": {"steps": 2000}}
    rd = create_run(root, name, cfg, {})
    rows = [pd.DataFrame({"step": STEPS, "key": k, "value": v}) for k, v in series.items()]
    rd.write_metrics(pd.concat(rows, ignore_index=True))
    rd.write_events({"onsets": {"memorisation": {"step": 100}}})
    rd.set_status("done", 2000)
    return rd


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("forecast")
    for i in range(12):
        _write(root / "train", f"t{i}", i, int(1000 + 60 * i), "grok")
    for i in range(12):
        _write(root / "train", f"n{i}", 100 + i, None, "null-a" if i % 2 else "null-b")
    for i in range(3):
        _write(root / "new", f"t{i}", 200 + i, 1500, "grok")
        _write(root / "new", f"n{i}", 300 + i, None, "null-a")
    _write(root / "early", "t", 400, 500, "grok")  # crosses before the decision step
    return root


KW = dict(target=Target("test/acc", 0.5), rule=RULE, feature_cfg=FeatureConfig(window=10))


def test_planted_precursor_is_found_and_noise_is_not(runs, tmp_path):
    s = api.forecast_evaluate([runs / "train"], tmp_path, n_boot=200, **KW)
    assert s["runs"] == 24 and s["transition"] == 12 and s["null"] == 12
    single = pd.read_csv(tmp_path / "single.csv").set_index("feature")
    assert single.loc["precursor/level|last", "auroc"] == 1.0
    assert single.loc["precursor/level|last", "hit_rate"] == 1.0
    noise = single.loc["noise/z|last"]
    assert noise["ci_low"] <= 0.5 <= noise["ci_high"]
    assert s["forecaster_cv"]["auroc"] > 0.95
    kinds = pd.read_csv(tmp_path / "null_kinds.csv")
    assert sorted(kinds["null_kind"]) == ["null-a", "null-b"] and (kinds["auroc"] > 0.95).all()
    # lead of a hit: onset − decision step (700), as a fraction of onset − start (100)
    lead = single.loc["precursor/level|last", "lead_steps"]
    onsets = 1000 + 60 * np.arange(12)
    assert lead == np.median(onsets - 700)


def test_features_at_t_ignore_everything_after_t(runs, tmp_path):
    rd = open_run(runs / "train" / "t3")
    m = rd.metrics()
    before = run_features(m, None, 100, 700, FeatureConfig())
    future = m["step"] > 700
    for altered in (
        m.assign(value=np.where(future, m["value"] * -3 + 7, m["value"])),  # reversal, noise
        m[~future],  # truncation
        pd.concat([m[~future], open_run(runs / "train" / "n3").metrics().query("step > 700")]),
    ):
        after = run_features(altered, None, 100, 700, FeatureConfig())
        assert after.keys() == before.keys()
        assert all(
            (np.isnan(before[k]) and np.isnan(after[k])) or before[k] == after[k] for k in before
        )


def test_runs_crossing_before_the_decision_step_are_excluded(runs):
    tab = api.forecast_table([runs / "early"], **KW)
    assert tab.rows.empty
    assert "before the decision step 700" in tab.excluded[0]["reason"]


def test_hindsight_measures_are_left_out_and_their_causal_variants_kept(tmp_path):
    rd = _write(tmp_path, "g", 7, 1500, "small")
    conf = rd.config() | {"phenomenon": "grokking"}
    (rd.path / "config.json").write_text(json.dumps(conf))
    extra = [
        pd.DataFrame({"step": STEPS, "key": k, "value": 1.0 + 0 * STEPS})
        for k in ("progress/restricted_loss", "progress/restricted_loss_causal")
    ]
    rd.write_metrics(pd.concat([rd.metrics(), *extra], ignore_index=True))
    feats = api.forecast_table([tmp_path], **KW).features
    assert not [f for f in feats if f.startswith("progress/restricted_loss|")]
    assert "progress/restricted_loss_causal|last" in feats and "precursor/level|last" in feats


def test_fit_save_apply_roundtrip_and_cli(runs, tmp_path):
    model_dir = tmp_path / "model"
    feats = ["precursor/level|last", "precursor/level|change"]
    model, _ = api.forecast_fit([runs / "train"], model_dir, features=feats, **KW)
    loaded = Forecaster.load(model_dir)
    assert loaded == model and all(f.startswith("precursor/") for f in loaded.features)
    table = api.forecast_apply(model_dir, [runs / "new"])
    assert len(table) == 6
    pred = dict(zip(table["run"].map(lambda p: p.split("/")[-1]), table["prediction"]))
    assert pred == {"t0": True, "t1": True, "t2": True, "n0": False, "n1": False, "n2": False}
    assert (table.loc[table["prediction"], "alarm_step"] == 700).all()

    r = CliRunner().invoke(app, ["forecast", "apply", str(model_dir), str(runs / "new")])
    assert r.exit_code == 0 and "t0" in r.stdout


def test_bad_input_exits_2_with_one_line(runs, tmp_path):
    cli = CliRunner()
    model_dir = tmp_path / "m"
    api.forecast_fit([runs / "train"], model_dir, features=["noise/*"], **KW)
    # runs of another family: they lack the forecaster's features
    other = tmp_path / "other"
    rd = create_run(other, "x", {"phenomenon": "s", "preset": "p", "task": {},
                                 "train": {"steps": 2000}}, {})  # fmt: skip
    rows = [pd.DataFrame({"step": STEPS, "key": k, "value": 0.1 + 0 * STEPS})
            for k in ("train/acc", "test/acc")]  # fmt: skip
    rd.write_metrics(pd.concat(rows, ignore_index=True))
    rd.write_events({"onsets": {"memorisation": {"step": 100}}})
    rd.set_status("done", 2000)
    r = cli.invoke(app, ["forecast", "apply", str(model_dir), str(other)])
    assert r.exit_code == 2 and "lack the forecaster's features: noise/z|" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "forecaster.json").write_text(json.dumps({"format": 1, "features": 3}))
    r = cli.invoke(app, ["forecast", "apply", str(tmp_path / "bad"), str(runs / "new")])
    assert r.exit_code == 2 and "not a forecaster" in r.stderr

    r = cli.invoke(app, ["forecast", "fit", str(runs / "new" / "n0"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "need >= 2 transition and >= 2 null runs" in r.stderr
    r = cli.invoke(app, ["forecast", "evaluate", str(runs / "train"), "--out",
                         str(tmp_path / "e"), "--features", "nothing*"])  # fmt: skip
    assert r.exit_code == 2 and "matches no feature" in r.stderr
    r = cli.invoke(app, ["forecast", "fit", str(runs / "train"), "--out", str(tmp_path / "o"),
                         "--offset-frac", "1.5"])  # fmt: skip
    assert r.exit_code == 2 and "offset_frac=1.5 is invalid" in r.stderr
    assert not (tmp_path / "o").exists()
    r = cli.invoke(app, ["forecast", "evaluate", str(runs / "new"), "--out", str(tmp_path / "f")])
    assert r.exit_code == 2 and "3 null and 3 transition runs" in r.stderr
    assert ">= 10 null runs" in r.stderr and not (tmp_path / "f").exists()


def test_rank_auroc_equals_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    from phasewatch.detect.forecast.evaluate import _auc_rows, auroc

    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, (20, 30)).astype(float)  # many ties
    y = rng.integers(0, 2, (20, 30))
    want = [roc_auc_score(yy, ss) for ss, yy in zip(s, y)]
    assert np.allclose(_auc_rows(s, y), want) and auroc(s[0], y[0]) == want[0]


def test_feature_globs_with_exclusions():
    from phasewatch.api.forecast import _match_features

    names = ["test/acc|last", "test/loss|slope", "llc/mean|last", "dmd/residual|tau_ac1"]
    assert _match_features(names, ["*", "!test/*"]) == ["llc/mean|last", "dmd/residual|tau_ac1"]
    assert _match_features(names, ["!test/*", "!*|tau_ac1"]) == ["llc/mean|last"]
    assert _match_features(names, ["llc/*", "test/acc*"]) == ["test/acc|last", "llc/mean|last"]
    with pytest.raises(ConfigError, match="matches no feature"):
        _match_features(names, ["!*"])


def test_online_forecaster_matches_apply_and_fires_once(runs, tmp_path):
    import dataclasses

    from phasewatch.detect.forecast.online import OnlineForecaster

    feats = ["precursor/level|last", "precursor/level|slope", "noise/z|tau_ac1"]
    model, _ = api.forecast_fit([runs / "train"], tmp_path / "m", features=feats, **KW)
    assert model.event_rule is None  # the synthetic phenomenon registers no onset rules
    with pytest.raises(ConfigError, match="anchored to 'memorisation'"):
        OnlineForecaster(model, 2000)
    model = dataclasses.replace(
        model, event_rule={"key": "train/acc", "op": ">=", "threshold": 0.99}
    )
    model.save(tmp_path / "m")
    offline = api.forecast_apply(tmp_path / "m", [runs / "new"]).set_index("run")
    for run in (runs / "new").iterdir():
        online = OnlineForecaster(tmp_path / "m", planned=2000)
        results = []
        wide = open_run(run).metrics().pivot_table(index="step", columns="key", values="value")
        for step, row in wide.iterrows():
            online.add(int(step), row.dropna().to_dict())
            if (r := online.update()) is not None:
                results.append(r)
        assert len(results) == 1 and results[0].decision_step == 700
        assert results[0].score == pytest.approx(offline.loc[str(run), "score"], abs=1e-12)
        assert results[0].alarm == bool(offline.loc[str(run), "prediction"])
        assert "forecast at step 700" in str(results[0])
