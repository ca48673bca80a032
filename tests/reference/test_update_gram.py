"""Known answers for the Gram spectrum of parameter updates (Xu 2026, arXiv 2603.28964).

Tolerance for isotropic updates: for a W × D matrix of i.i.d. N(0, 1) entries,
sqrt(D) - sqrt(W) - s <= sigma_min <= sigma_max <= sqrt(D) + sqrt(W) + s with probability
>= 1 - 2 exp(-s^2 / 2) (Davidson & Szarek 2001, Thm II.13). With c = (sqrt(W) + s) / sqrt(D)
every ratio sigma_j / sigma_{j+1} lies in [1, (1 + c) / (1 - c)] and sigma_1 / sum(sigma)
in [1/W, (1 + c) / ((1 - c) W)]; s = 6 (failure probability 3e-8), W = 10, D = 20,000
give c = 0.065 and the bound B = 1.139.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_configs import GROKKING
from torch import nn

from phasewatch import Watcher, api
from phasewatch.signals.precursors.update_gram import UpdateGramSettings, update_gram
from phasewatch.signals.trajectory import History, NotApplicable
from phasewatch.training import updates
from phasewatch.training.updates import GAP_CAP, ModelUpdates, UpdateTracker, gram_metrics

W, D = 10, 20_000
C = (math.sqrt(W) + 6.0) / math.sqrt(D)
B = (1 + C) / (1 - C)
GEN = torch.Generator().manual_seed(0)


def _values(updates: list[torch.Tensor], window: int = W) -> dict[int, dict[str, float]]:
    """Feed ``updates`` (u_0, u_1, ...) one by one; the values at every index t (window of
    u_{t-W} .. u_{t-1}) as soon as they exist."""
    tracker = UpdateTracker(len(updates[0]), window=window)
    out = {}
    for s, u in enumerate(updates):
        tracker.push(s, u[None])
        if values := tracker.metrics(s + 1)[0]:
            out[s + 1] = values
    return out


def _iso(n: int, norm: float | None = None) -> list[torch.Tensor]:
    rows = torch.randn(n, D, generator=GEN)
    if norm is not None:
        rows = rows / rows.norm(dim=1, keepdim=True) * norm
    return list(rows)


def test_parallel_updates_give_the_capped_gap_and_a_top_fraction_of_one():
    v = torch.randn(D, generator=GEN)
    coeffs = torch.randn(W, generator=GEN)
    values = _values([c * v for c in coeffs])[W]
    assert values["updates/gram_gap"] == GAP_CAP  # rank 1: infinite gap, reported as the cap
    assert values["updates/gram_top_frac"] == pytest.approx(1.0, abs=1e-6)


def test_no_movement_reports_nothing():
    assert _values([torch.zeros(D)] * W) == {}
    assert gram_metrics(torch.zeros(W)) == {}


def test_isotropic_updates_give_a_gap_near_one():
    values = _values(_iso(W))[W]
    assert 1.0 <= values["updates/gram_gap"] <= B
    assert 1 / W <= values["updates/gram_top_frac"] <= B / W


def test_planted_alignment_raises_the_gap_right_after_the_switch_and_not_before():
    """Isotropic updates u_0..u_{S-1}, then updates along one direction v (same norm r):
    with n aligned updates in the window, sigma_1 = r sqrt(n) and the isotropic ones give
    sigma ~ r, so the gap is sqrt(n) (B-tolerance) until the window's rank drops to
    kmax = 3 (n >= W - 2), which is the capped, infinite gap."""
    switch, r = 25, math.sqrt(D)
    v = torch.randn(D, generator=GEN)
    v = v / v.norm() * r
    signs = torch.tensor([1.0, -1.0]).repeat(W)
    updates = _iso(switch, r) + [s * v for s in signs]
    gaps = {t: x["updates/gram_gap"] for t, x in _values(updates).items()}
    for t in range(W, switch + 2):  # windows with at most one aligned update
        assert 1.0 <= gaps[t] <= B, t
    for n in range(2, W - 2):
        assert math.sqrt(n) / B <= gaps[switch + n] <= math.sqrt(n) * B, n
    for n in range(W - 2, W + 1):
        assert gaps[switch + n] == GAP_CAP, n
    # causality: a different future leaves every value up to the switch unchanged
    other = updates[:switch] + _iso(W, r)
    again = _values(other)
    for t in range(W, switch + 1):
        assert again[t]["updates/gram_gap"] == gaps[t]


def test_incremental_gram_equals_the_recomputed_one():
    updates = [torch.randn(3_000, generator=GEN) for _ in range(27)]
    tracker = UpdateTracker(3_000, window=W)
    for s, u in enumerate(updates):
        tracker.push(s, u[None])
    u = torch.zeros(W, 3_000, dtype=torch.float64)
    for s in range(len(updates) - W, len(updates)):
        u[s % W] = updates[s].double()
    recomputed = u @ u.T
    err = (tracker.gram[0] - recomputed).abs().max() / recomputed.abs().max()
    assert err <= 1e-6
    assert tracker.metrics(len(updates))[0]  # a full window


def test_stacked_members_equal_single_trackers():
    k, p = 3, 500
    updates = torch.randn(15, k, p, generator=GEN)
    stacked = UpdateTracker(p, members=k, window=W)
    singles = [UpdateTracker(p, window=W) for _ in range(k)]
    for s, u in enumerate(updates):
        stacked.push(s, u)
        for m, t in enumerate(singles):
            t.push(s, u[m][None])
    together = stacked.metrics(15)
    for m, t in enumerate(singles):
        alone = t.metrics(15)[0]
        assert together[m].keys() == alone.keys() == {"updates/gram_gap", "updates/gram_top_frac"}
        for key in alone:
            assert together[m][key] == pytest.approx(alone[key], rel=1e-12)


def test_a_gap_in_the_observations_restarts_the_window():
    tracker = UpdateTracker(100, window=3)
    for s in (0, 1, 2, 3):
        tracker.observe(s, torch.randn(1, 100, generator=GEN))
    assert tracker.metrics(3)[0]
    tracker.observe(5, torch.randn(1, 100, generator=GEN))  # step 4 missed
    assert tracker.filled == 0 and not tracker.metrics(5)[0]
    with pytest.raises(ValueError, match="window"):
        UpdateTracker(10, window=1)


def _history(thetas: dict[int, torch.Tensor], step: int) -> History:
    states = {s: {"w": th.reshape(4, -1), "count": torch.tensor(1)} for s, th in thetas.items()}
    empty = pd.DataFrame({"step": [], "key": [], "value": []})
    cps = tuple(s for s in sorted(states) if s <= step)
    return History(step=step, metrics=empty, checkpoints=cps, loader=lambda s: states[s])


def test_checkpoint_signal_matches_the_tracker_and_says_what_it_needs():
    steps = list(range(0, 120, 10))  # 12 checkpoints
    updates = _iso(len(steps) - 1)
    thetas, theta = {}, torch.zeros(D)
    for s, u in zip(steps, [torch.zeros(D), *updates]):
        theta = theta + u
        thetas[s] = theta.clone()
    settings, gen = UpdateGramSettings(), torch.Generator()
    with pytest.raises(NotApplicable, match="needs 11 checkpoints <= step 90.*has 10"):
        update_gram(_history(thetas, 90), settings, generator=gen)
    got = update_gram(_history(thetas, 110), settings, generator=gen)
    diffs = [thetas[b] - thetas[a] for a, b in zip(steps[1:-1], steps[2:])]  # last W updates
    expected = _values(diffs)[W]
    for key in ("gram_gap", "gram_top_frac"):
        assert got.values[f"update_gram/{key}"] == pytest.approx(
            expected[f"updates/{key}"], rel=1e-9
        )
    assert got.warnings == []
    # a straight line through parameter space: all updates parallel
    line = {s: torch.full((D,), 0.01 * s) for s in steps}
    assert update_gram(_history(line, 110), settings, generator=gen).values[
        "update_gram/gram_gap"
    ] == pytest.approx(GAP_CAP, rel=1e-3)


def test_checkpoint_signal_warns_on_uneven_spacing():
    steps = [0, 5, *range(10, 100, 10)]
    thetas = {s: torch.randn(D, generator=GEN) for s in steps}
    got = update_gram(_history(thetas, 90), UpdateGramSettings(), generator=torch.Generator())
    assert "unevenly spaced" in got.warnings[0] and "update_gram/gram_gap" in got.values


def _move(model: nn.Module, updates: list[torch.Tensor], every: int) -> dict[int, dict]:
    """Apply ``updates`` to ``model`` one per step, calling ModelUpdates after each."""
    hook, out = ModelUpdates(model, every=every), {}
    flat = nn.utils.parameters_to_vector(model.parameters()).detach()
    for step, u in enumerate([torch.zeros_like(flat), *updates]):
        flat = flat + u
        nn.utils.vector_to_parameters(flat, model.parameters())
        if values := hook.step(step):
            out[step] = values
    return out


def test_model_hook_reports_the_window_before_each_measured_step():
    model = nn.Linear(50, 40)
    updates = _iso(35)
    updates = [u[:2040] for u in updates]
    got = _move(model, updates, every=15)
    assert sorted(got) == [15, 30]
    expected = _values(updates)
    for step in (15, 30):
        for key, value in got[step].items():
            assert value == pytest.approx(expected[step][key], rel=1e-5)


def test_watcher_logs_the_update_keys_at_measured_steps(tmp_path):
    model = nn.Linear(8, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 8, generator=GEN), torch.randn(32, 4, generator=GEN)
    watch = Watcher(model, out=tmp_path / "r", every=10, signals=["geometry"])
    for step in range(31):
        watch.step(step, {"train/loss": float(((model(x) - y) ** 2).mean().detach())})
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
    watch.close()
    m = watch.rd.metrics()
    gap = m[m["key"] == "updates/gram_gap"]
    assert gap["step"].tolist() == [10, 20, 30]
    assert np.isfinite(gap["value"]).all() and (gap["value"] >= 1).all()


def test_checkpoint_signal_through_the_runner_ignores_the_future(tmp_path):
    """``phasewatch measure --signals update_gram`` on a tiny run with 21 checkpoints:
    values from the 11th checkpoint on; rewriting every checkpoint after T leaves every
    value up to T unchanged (and does move the later ones)."""
    tiny = GROKKING | {"threads": 1, "checkpoint_every": 2}
    rd = api.run("grokking", "quick", tiny, out=tmp_path / "a", progress=False, report=False)
    got = api.measure(rd.path, ["update_gram"], progress=False)
    gap = got[got["key"] == "update_gram/gram_gap"].set_index("step")["value"]
    assert gap.index.tolist() == list(range(20, 41, 2)) and (gap >= 1).all()
    t = 30
    for step in rd.checkpoint_steps():
        if step > t:
            rd.save_checkpoint(step, {k: v + 0.1 * step for k, v in rd.load_checkpoint(0).items()})
    (rd.path / "signals.parquet").unlink()
    again = api.measure(rd.path, ["update_gram"], progress=False)
    after = again[again["key"] == "update_gram/gram_gap"].set_index("step")["value"]
    pd.testing.assert_series_equal(after.loc[:t], gap.loc[:t], check_exact=True)
    assert (after.loc[t + 1 :] != gap.loc[t + 1 :]).all()


def test_a_window_over_the_memory_budget_turns_the_tracker_off(monkeypatch, caplog):
    monkeypatch.setattr(updates, "MAX_BYTES", 8 * W * 99)
    assert UpdateTracker(99, window=W).on
    with caplog.at_level("WARNING", logger="phasewatch.training"):
        tracker = UpdateTracker(100, window=W)
    assert not tracker.on and "MAX_BYTES" in caplog.text
    for s in range(W + 1):
        tracker.observe(s, torch.randn(1, 100, generator=GEN))
    assert tracker.metrics(W) == [{}] and tracker.state(W) is None
    hook = ModelUpdates(nn.Linear(10, 10), every=1)
    assert not hook.tracker.on and [hook.step(s) for s in range(W + 2)] == [{}] * (W + 2)
