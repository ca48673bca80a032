"""Every precursor signal is measurable on runs of grokking, induction and superposition
(issue "Precursor signals"): each gives values at the last checkpoint, except where it
cannot apply by construction, which is one "not applicable" warning naming why
(``logit_scale`` on superposition, a regression model without logits)."""

from __future__ import annotations

import pytest
from tiny_configs import GROKKING

from phasewatch import api
from phasewatch.store import open_run
from phasewatch.store.signals import read_signals, read_signals_json

PRECURSORS = (
    "samples",
    "dmd",
    "loss_covariance",
    "loss_spectrum",
    "update_gram",
    "commutator",
    "logit_scale",
    "ntk_alignment",
)
# Small windows for runs of 7 checkpoints and ~40 logged losses.
SETTINGS = {
    "dmd": {"window": 6, "delays": 2, "rank": 2, "quantiles": 8},
    "loss_covariance": {"window": 5},
    "loss_spectrum": {"min_points": 20},
    "update_gram": {"window": 4},
    "commutator": {"samples": 2},
    "ntk_alignment": {"samples": 8},
}
CADENCE = {"eval_every": 2, "checkpoint_every": 10, "threads": 1}
RUNS = {
    "grokking": ("quick", GROKKING | {"steps": 60} | CADENCE),
    "induction": (
        "olsson-2layer",
        {"vocab": 16, "n_ctx": 16, "span_len": 4, "d_model": 16, "n_heads": 2, "d_head": 8}
        | {"batch_size": 16, "eval_batch": 8, "steps": 60}
        | CADENCE,
    ),
    "superposition": ("intro", {"steps": 60} | CADENCE),
}


@pytest.mark.parametrize("phenomenon", sorted(RUNS))
def test_every_precursor_is_measured_or_says_why_not(phenomenon, tmp_path):
    preset, overrides = RUNS[phenomenon]
    rd = api.run(phenomenon, preset, overrides, out=tmp_path, progress=False, report=False)
    api.measure(rd.path, PRECURSORS, settings=SETTINGS, progress=False, on_warning=lambda w: None)
    run = open_run(rd.path)
    last = max(run.checkpoint_steps())
    table = read_signals(run)
    measured = set(table.loc[table["step"] == last, "signal"])
    warnings = [w["message"] for w in read_signals_json(run)["warnings"] if w["step"] == last]
    expected = set(PRECURSORS)
    if phenomenon == "superposition":
        expected.discard("logit_scale")
        assert any(m.startswith("logit_scale: not applicable") for m in warnings), warnings
    assert expected <= measured, (sorted(expected - measured), warnings)
