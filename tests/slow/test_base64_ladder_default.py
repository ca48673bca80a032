"""The default base64 ladder (issue 9): five tiny transformers trained on base64 encode and
decode; the largest must beat the smallest on every metric, and exact match must rise
steeply across size while per-character accuracy rises steadily.

Seed 0 measured (one thread; 615-727 s of CPU, so ~12 min on an idle core), final step
1,500, at commit 513223d (2026-12-04; before the fused attention path the 1-layer members
were the same and the 2-layer ones reached exact 0.625 / 0.719 / 0.930):

    member  params   exact  similarity  char_acc  logprob
    L1d16    12,048  0.008       0.196     0.345   -2.33
    L1d32    30,240  0.305       0.639     0.712   -1.03
    L2d48    82,464  0.668       0.906     0.916   -0.280
    L2d64   134,528  0.734       0.943     0.952   -0.169
    L2d128  465,664  0.941       0.982     0.993   -0.023

Tolerances are two-sided: the final metrics of the smallest and largest member must lie
within the ranges below (wide enough for thread-count round-off, narrow enough to catch a
ladder that stops learning or a scorer that stops failing wrong answers).
"""

from __future__ import annotations

import pytest

from phasewatch import api

pytestmark = pytest.mark.slow

# member -> metric -> (low, high) at the end of training, seed 0
RANGES = {
    "L1d16": {"exact": (0.0, 0.1), "char_acc": (0.25, 0.45), "logprob": (-2.8, -1.9)},
    "L2d128": {"exact": (0.85, 1.0), "char_acc": (0.97, 1.0), "logprob": (-0.1, 0.0)},
}


@pytest.fixture(scope="module")
def ladder(tmp_path_factory):
    return api.run(
        "base64-ladder", overrides={"threads": 1}, out=tmp_path_factory.mktemp("ladder"),
        progress=False,
    )  # fmt: skip


def test_largest_beats_smallest_on_every_metric(ladder):
    ev = ladder.events()["ladder"]
    assert (ev["smallest"], ev["largest"]) == ("L1d16", "L2d128")
    assert ev["all_metrics_better"], ev["largest_beats_smallest"]
    table = ladder.table("ladder").set_index("member")
    for metric in ("exact", "acc95", "similarity", "char_acc", "logprob"):
        assert table.loc["L2d128", metric] > table.loc["L1d16", metric], metric


def test_final_metrics_within_the_measured_ranges(ladder):
    table = ladder.table("ladder").set_index("member")
    for member, ranges in RANGES.items():
        for metric, (lo, hi) in ranges.items():
            assert lo <= table.loc[member, metric] <= hi, (member, metric)


def test_mirage_statements_come_from_the_data(ladder):
    from phasewatch.report.sections.base64 import write_mirage

    out, result = write_mirage(ladder)
    size, steps, toy = result["statements"]
    assert size.startswith("Across model size:") and "Verdict:" in size
    assert steps.startswith("Over training steps of L2d128:")
    assert toy.startswith("The toy p^L")
    assert (out / "mirage.html").stat().st_size > 100_000
