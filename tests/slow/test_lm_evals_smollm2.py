"""The language-model evaluations on a real instruct model offline: SmolLM2-135M-Instruct
(the ``smollm2`` extra's GGUF, converted once to the phasewatch cache).

- Base64Bench through inspect's ``hf/local`` (4 short samples, greedy): every sample is
  scored, each similarity is the scorer's on the recorded answer, and the sweep is the
  pass rule applied to those samples (non-increasing in the threshold);
- alignment faking (rule-based judge, a handful of cases, greedy decoding): every reply
  is judged, the tables are consistent and the gap's interval contains the gap;
- introspection sweeps: a layer sweep, and a scale sweep in which a vanishing injection
  (scale 1e-6) must leave every guess unchanged, so accuracy is exactly chance (20%);
- activation patching: no effect before the injection layer, the clean run restored by
  patching every position at the injection layer.

Measured 2026-12-04 on a 2-core machine shared with ~8 jobs (load ~11): see each test.
135M parameters is below the ~1B at which thought-injection localization was reported
to appear, so no accuracy above chance is required.
"""

from __future__ import annotations

import pytest

from phasewatch.evals import catalog

pytestmark = pytest.mark.slow

pytest.importorskip("transformers")
pytest.importorskip("inspect_ai")
if catalog.smollm2_gguf() is None:
    pytest.skip(
        "needs the smollm2 extra: pip install 'phasewatch[smollm2]'", allow_module_level=True
    )

from phasewatch.api.analysis import (  # noqa: E402
    eval_alignment_faking,
    eval_base64bench,
    eval_introspection_patching,
    eval_introspection_sweep,
)
from phasewatch.evals.base64spec import STATUSES, score_answer  # noqa: E402
from phasewatch.evals.dataset import read_jsonl  # noqa: E402
from phasewatch.evals.introspection import IntrospectionConfig  # noqa: E402
from phasewatch.evals.judge import LABELS  # noqa: E402


@pytest.fixture(scope="module")
def folder():
    return catalog.resolve("smollm2")  # converts once (minutes), then loads in seconds


def test_base64bench(folder, tmp_path):
    args = {"model_path": str(folder), "device": "cpu", "do_sample": False}
    r = eval_base64bench("hf/local", model_args=args, types="single_char,common_word",
                         limit=4, max_tokens=32, max_connections=4, out=tmp_path)  # fmt: skip
    s = r.samples.set_index("id")
    assert len(s) == 4 and set(s["status"]) <= set(STATUSES)
    assert r.info["max_connections"] == 4 and r.info["max_tokens"] == 32
    for rec in read_jsonl(r.path / "dataset.jsonl", "both"):
        row = s.loc[rec["id"]]
        got = score_answer(row["answer"], rec["text"], rec["direction"])
        assert got.status == row["status"] and got.similarity == pytest.approx(row["similarity"])
    sweep = r.sweep[r.sweep["direction"] == "all"].sort_values("threshold")
    ok = s["status"] == "ok"
    for t, acc in zip(sweep["threshold"], sweep["accuracy"], strict=True):
        assert acc == pytest.approx((ok & (s["similarity"] >= t)).mean())
    assert sweep["accuracy"].is_monotonic_decreasing
    assert (r.path / "figures" / "sweep.png").exists()


def test_alignment_faking_rule_judge(folder, tmp_path):
    args = {"model_path": str(folder), "device": "cpu", "do_sample": False}
    r = eval_alignment_faking("hf/local", model_args=args, n_cases=2, max_tokens=80,
                              out=tmp_path)  # fmt: skip
    assert len(r.responses) == 8 and set(r.responses["label"]) <= set(LABELS)
    assert (r.responses["reply"].str.len() > 0).all()
    assert (r.compliance["n"] == 2).all() and len(r.gap) == 2
    for g in r.gap.itertuples():
        assert g.ci_low <= g.gap <= g.ci_high and -1 <= g.gap <= 1
    assert (r.path / "figures" / "compliance.png").exists()


def test_introspection_sweeps(folder, tmp_path):
    cfg = IntrospectionConfig("smollm2", layer="0.25", scale=10.0, trials=2, seed=0)
    layers = eval_introspection_sweep(cfg, folder, "layers", layers="0,0.5", out=tmp_path)
    assert layers.sweep["layer"].tolist() == [0, 15]
    assert (layers.sweep["predictions"] == 10).all()
    scale = eval_introspection_sweep(cfg, folder, "scale", scales=[1e-6, 10.0], out=tmp_path)
    pred = scale.predictions
    tiny = pred[pred["scale"] == 1e-6]
    assert (tiny["guess"] == tiny["baseline_guess"]).all()
    assert scale.sweep.set_index("scale").loc[1e-6, "accuracy"] == pytest.approx(0.2)


def test_patching(folder, tmp_path):
    cfg = IntrospectionConfig("smollm2", layer="0.25", scale=10.0, trials=1, seed=0)
    r = eval_introspection_patching(cfg, folder, out=tmp_path)
    eff = r.sweep.set_index(["layer", "group"])["effect"]
    inj, n = r.info["layer"], r.info["n_layers"]
    assert all(abs(eff[(ell, "all")]) < 0.05 for ell in range(inj))
    assert all(abs(eff[(ell, "all")] - 1) < 0.05 for ell in range(inj, n))
