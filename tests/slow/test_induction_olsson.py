"""Olsson et al. 2022 at CPU scale: the 2-layer attention-only preset forms induction heads
in an abrupt phase change (ICL-score jump, prefix-matching heads in layer 1 fed by a
previous-token head in layer 0); the 1-layer control never does.

Each preset trains 4.5k steps (2-layer ~12 min, 1-layer ~8 min on one thread of a shared
2-core machine), hence ``slow``: ``pytest -m slow tests/slow/test_induction_olsson.py``.
Seed 0 measured: ICL score -0.26 nats at step 3,000, -4.0 at 3,500 (10/50/90% of the
change at steps 3,150/3,400/3,500); all four layer-1 heads end with prefix matching
0.83-0.87 and copying > 0.99; L0H1 becomes a previous-token head (0.51). The control:
prefix matching <= 0.025 and ICL score >= -0.22 nats throughout.

Thresholds and why:
    * prefix matching > 0.5 at the end and < 0.1 before the jump (every eval before the ICL
      score has made 10% of its change): the issue's criterion. A uniform head scores
      ~0.02 on these sequences, so 0.1 is 5x chance.
    * ICL score: |score| < 0.3 nats at step 0 (untrained: every position ~ln 128), and
      between -ln(128) (a perfect copy, the most it can reach) and -2 nats at the end;
      abrupt: 10% -> 90% of the change within a fifth of the run, after a plateau at
      least twice that long.
    * the control: no head above 0.1 prefix matching at any eval, ICL score > -1 nats at
      every eval (a one-layer model can only raise the logits of every token in context).
"""

from __future__ import annotations

import math

import pytest

from phasewatch import api
from phasewatch.detect.onsets import series

pytestmark = pytest.mark.slow
LN_V = math.log(128)
# One thread: on a shared 2-core machine two OpenMP threads spin-wait and run ~4x slower;
# the thread count changes only float summation order, not the outcome.
THREADS = {"threads": 1}


@pytest.fixture(scope="module")
def two_layer(tmp_path_factory):
    out = tmp_path_factory.mktemp("ind2")
    return api.run("induction", "olsson-2layer", THREADS, out=out, progress=False)


@pytest.fixture(scope="module")
def one_layer(tmp_path_factory):
    out = tmp_path_factory.mktemp("ind1")
    return api.run("induction", "olsson-1layer", THREADS, out=out, progress=False)


def _head_series(rd, score: str) -> dict[str, object]:
    m = rd.metrics()
    keys = sorted(k for k in m["key"].unique() if k.startswith(f"heads/{score}/L"))
    return {k.rsplit("/", 1)[1]: series(m, k) for k in keys}


def test_induction_2layer_icl_score_jumps(two_layer):
    m = two_layer.metrics()
    icl = series(m, "icl/score")
    assert abs(icl.iloc[0]) < 0.3
    assert -LN_V < icl.iloc[-1] < -2.0
    tr = two_layer.events()["phase_change"]["icl_score"]
    assert tr["mid"] is not None and tr["change"] < -2.0
    # abrupt: 10% -> 90% of the change within a fifth of the run, after a plateau >= 2x that
    steps, width = int(m["step"].max()), tr["end"] - tr["start"]
    assert width <= steps / 5 and tr["start"] >= 2 * width
    first, rep = series(m, "loss/first_half"), series(m, "loss/repeated")
    assert abs(first.iloc[-1] - LN_V) < 0.1  # random tokens stay unpredictable
    assert rep.iloc[-1] < 0.5 * first.iloc[-1]
    onset = two_layer.events()["onsets"]["icl_jump"]["step"]
    assert onset is not None and tr["start"] <= onset <= tr["end"]


def test_induction_2layer_prefix_matching_heads_form_at_the_jump(two_layer):
    pm = _head_series(two_layer, "prefix_matching")
    tr = two_layer.events()["phase_change"]["icl_score"]
    formed = {}
    for name, s in pm.items():
        before = s[s.index < tr["start"]]
        if s.iloc[-1] > 0.5 and before.max() < 0.1:
            formed[name] = s.iloc[-1]
    assert formed, {n: (s.iloc[-1], s[s.index < tr["start"]].max()) for n, s in pm.items()}
    assert all(name.startswith("L1") for name in formed)  # composition needs layer >= 1
    ev = two_layer.events()
    assert {h["name"] for h in ev["induction_heads"]} == {
        n for n, s in pm.items() if s.iloc[-1] >= ev["induction_threshold"]
    }
    top = ev["top_induction_head"]
    assert top["name"] in formed and top["copying"] > 0.5  # it copies what it attends to
    pm_tr = ev["phase_change"]["prefix_matching_max"]
    width = tr["end"] - tr["start"] + 2 * two_layer.config()["train"]["checkpoint_every"]
    assert abs(pm_tr["mid"] - tr["mid"]) <= width  # the heads form during the ICL jump


def test_induction_2layer_previous_token_head_in_layer_0(two_layer):
    pt = _head_series(two_layer, "previous_token")
    best = max((s.iloc[-1], n) for n, s in pt.items() if n.startswith("L0"))
    assert best[0] > 0.3, best
    assert max(s.iloc[0] for s in pt.values()) < 0.1


def test_induction_2layer_attention_table_shows_the_induction_stripe(two_layer):
    t = two_layer.table("attention_top_head")
    h = 85 // 2
    after = t[(t["phase"] == "after") & (t["query"] >= h)]
    before = t[(t["phase"] == "before") & (t["query"] >= h)]
    on = lambda d: d[d["key"] == d["query"] - h + 1]["weight"].mean()  # noqa: E731
    assert on(after) > 0.5 and on(before) < 0.15  # one sequence: a little noisier


def test_induction_1layer_control_has_no_induction_heads_and_no_jump(one_layer):
    pm = _head_series(one_layer, "prefix_matching")
    assert len(pm) == 4
    assert max(s.max() for s in pm.values()) < 0.1
    icl = series(one_layer.metrics(), "icl/score")
    assert icl.min() > -1.0
    ev = one_layer.events()
    assert ev["induction_heads"] == [] and ev["onsets"]["induction_head"]["step"] is None
    assert ev["onsets"]["icl_jump"]["step"] is None
