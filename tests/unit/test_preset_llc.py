"""Every preset carries LLC settings calibrated for its model (issue 20), and measuring at
a calibrated setting on a short run gives chains that do not diverge."""

from __future__ import annotations

from phasewatch import api, phenomena
from phasewatch.signals.llc import LLCSettings


def _presets():
    for name in phenomena.names():
        for preset, p in phenomena.get(name).presets.items():
            yield name, preset, p


def test_every_non_forecast_preset_has_valid_llc_settings():
    """Every preset but those named forecast* has LLC settings (docs/signals.md, "LLC
    defaults per preset", records how each was calibrated). forecast* presets are the
    forecasting benchmark's: bench/forecast.py pins every LLC field it measures with
    (grokking's forecast* also share the `small` calibration)."""
    missing = []
    for name, preset, p in _presets():
        fields = p.signals.get("llc")
        if fields:
            LLCSettings(**fields)  # valid fields and values
        elif not preset.startswith("forecast"):
            missing.append(f"{name}:{preset}")
    assert not missing, f"presets without calibrated LLC settings: {missing}"


def test_measuring_at_the_calibrated_setting_does_not_diverge(tmp_path):
    """The superposition ``intro`` preset's setting (ε 1e-3, γ 10, calibrated on a full
    run) on a 1,000-step run, at the measuring budget: every chain of both checkpoints
    samples, without stepping ε down."""
    want = phenomena.get("superposition").presets["intro"].signals["llc"]
    run = api.run(
        "superposition",
        "intro",
        {"steps": 1_000, "eval_every": 100, "checkpoint_every": 500, "threads": 1},
        out=tmp_path,
        progress=False,
        report=False,
    )
    table = api.measure(run.path, ["llc"], steps=[500, 1_000], threads=1, progress=False)
    v = table.pivot_table(index="step", columns="key", values="value")
    assert list(v.index) == [500, 1_000]
    assert (v["llc/epsilon"] == want["epsilon"]).all()
    assert (v["llc/step_downs"] == 0).all()
    assert (v["llc/flag/diverged"] == 0).all()
    assert (v["llc/mean"] > 0).all()
