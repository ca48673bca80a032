"""The mirage analysis on known answers: the closed-form toy (Schaeffer et al. 2023),
jump shares, and the verdict on synthetic ladders whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from phasewatch.detect import mirage as M


def test_toy_formulas():
    assert M.toy_exact(0.9, 10) == pytest.approx(0.3486784401)
    assert M.toy_edit_distance(0.9, 10) == pytest.approx(1.0)
    assert M.toy_exact(0.5, [1, 2, 3]).tolist() == [0.5, 0.25, 0.125]
    toy = M.toy_table(lengths=(1, 16), n=11)
    assert len(toy) == 22 and set(toy["L"]) == {1, 16}
    long = toy[toy["L"] == 16]
    # p^L is convex and tiny until p is near 1; L(1-p) falls linearly
    assert long.loc[long["p"].round(2) == 0.5, "exact"].item() == pytest.approx(0.5**16)
    assert np.allclose(np.diff(long["edit_distance"]), -1.6)


@pytest.mark.parametrize(
    "values,x,share,sharp,index,movement",
    [
        ([0, 0, 0, 1], None, 1.0, 3.0, 2, 1.0),  # a step: all of it in 1 of 3 intervals
        ([0, 0.25, 0.5, 0.75, 1.0], None, 0.25, 1.0, 0, 1.0),  # a straight line
        ([0, 1, 0], None, 0.5, 1.0, 0, 2.0),
        ([0.2, 0.3, 0.9, 1.0], None, 0.75, 2.25, 1, 0.8),
        ([0, 1, 2], [0, 1, 3], 0.5, 1.5, 0, 2.0),  # uneven x: the narrow interval is sharper
    ],
)
def test_jump_share_and_sharpness(values, x, share, sharp, index, movement):
    J, S, i, move = M.jump_share(values, x)
    assert (J, S) == (pytest.approx(share), pytest.approx(sharp))
    assert i == index and move == pytest.approx(movement)
    assert np.isnan(M.jump_share([1.0])[0]) and np.isnan(M.jump_share([2, 2])[1])


def _ladder(char_acc: list[float], exact: list[float], steps: int = 3):
    """Synthetic store: 5 members; metrics linear in steps towards the final values."""
    names = [f"m{i}" for i in range(len(char_acc))]
    ladder = pd.DataFrame(
        {"member": names, "params": [10**k for k in range(3, 8)], "params_non_embedding": 1}
    )
    rows = []
    for name, p, e in zip(names, char_acc, exact):
        final = {"exact": e, "acc95": e, "similarity": p, "char_acc": p, "logprob": np.log(p)}
        for s in range(steps):
            frac = (s + 1) / steps
            rows += [(s * 100, f"{k}/{name}", v * frac) for k, v in final.items()]
    metrics = pd.DataFrame(rows, columns=["step", "key", "value"])
    samples = pd.DataFrame({"member": np.repeat(names, 4), "target_len": 16})
    return metrics, ladder, samples


def test_smooth_per_token_accuracy_gives_a_mirage_verdict():
    p = [0.50, 0.65, 0.80, 0.90, 0.99]  # smooth in log10 params 3..7
    metrics, ladder, samples = _ladder(p, [x**16 for x in p])  # exact 1.5e-5 ... 0.851
    out = M.analyse(metrics, ladder, samples)
    size = out["statements"][0]
    assert size.startswith("Across model size:")
    assert "Verdict: exact match jumps where the continuous metrics are smooth" in size
    by = out["by_size"]
    assert np.allclose(by["predicted_exact"], by["exact"])  # exact = p^16 exactly here
    assert "within 0.000 at every size" in out["statements"][2]
    row = out["jumps"].query("axis == 'size' and metric == 'exact'").iloc[0]
    assert (row["jump_from"], row["jump_to"]) == ("m3", "m4") and row["jump_like"]


def test_a_jump_in_per_token_accuracy_is_not_called_a_mirage():
    p = [0.05, 0.06, 0.07, 0.97, 0.99]
    metrics, ladder, samples = _ladder(p, [x**16 for x in p])
    size = M.analyse(metrics, ladder, samples)["statements"][0]
    assert "exact match jumps, and so does per-character accuracy" in size


def test_flat_exact_match_does_not_jump():
    metrics, ladder, samples = _ladder([0.1, 0.2, 0.3, 0.4, 0.5], [0, 0, 0, 0, 0.01])
    size = M.analyse(metrics, ladder, samples)["statements"][0]
    assert "exact match (threshold 1.0) is flat" in size and "does not jump" in size
