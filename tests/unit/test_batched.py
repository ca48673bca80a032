"""Batched seeds: K members trained as one stacked model give the metrics of K single runs.

Tolerance: every logged metric agrees within |a - b| <= 1e-5 + 1e-5·|a| (float32 round-off
of batched vs separate kernels and of our AdamW vs torch's fused one; measured here: at
most 5e-7 absolute / 4e-6 relative after 30-200 steps). The same holds for the spectrum
of the parameter-update Gram matrix (``updates/gram_*``, one batched ring buffer vs one
per run), although updates are differences of parameters: measured at most 8e-7 relative.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny_configs import GROKKING as TINY_GROKKING

from phasewatch.api import configs, resolve_config
from phasewatch.store import open_run
from phasewatch.store.run import create_run
from phasewatch.training import train
from phasewatch.training.batched import StackedAdamW, batch_key, train_batched
from phasewatch.training.updates import STATE_KEY

GROKKING = TINY_GROKKING | {"threads": 1}
INDUCTION = {
    "vocab": 16,
    "n_ctx": 16,
    "span_len": 4,
    "batch_size": 8,
    "eval_batch": 8,
    "d_model": 16,
    "n_heads": 2,
    "d_head": 8,
    "steps": 30,
    "eval_every": 5,
    "checkpoint_every": 10,
    "threads": 1,
}
SUPERPOSITION = {"steps": 200, "eval_every": 50, "checkpoint_every": 100, "batch": 64}

CASES = {
    # members differ in seed, learning rate, weight decay and train fraction (padded masks)
    "grokking": ("quick", GROKKING, [{}, {"lr": 2e-3, "weight_decay": 0.3}, {"train_frac": 0.4}]),
    "induction": ("olsson-2layer", INDUCTION, [{}, {"warmup_steps": 5}]),
    "superposition": ("intro", SUPERPOSITION, [{}, {"density_min": 0.1}]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_batched_and_single_training_give_the_same_metrics(tmp_path, name):
    preset, base, extras = CASES[name]
    cfgs = [resolve_config(name, preset, base | {"seed": k} | e) for k, e in enumerate(extras)]
    keys = {batch_key(configs(c)[0], c) for c in cfgs}
    assert len(keys) == 1  # they may share a batch
    single = []
    for c in cfgs:
        rd = create_run(tmp_path / "single", "r", c, {})
        phen, task_cfg, train_cfg = configs(c)
        train(rd, phen.build(task_cfg, train_cfg), train_cfg, progress=False)
        single.append(rd)
    runs, tasks, trains = [], [], []
    for c in cfgs:
        runs.append(create_run(tmp_path / "batched", "r", c, {}))
        phen, task_cfg, train_cfg = configs(c)
        tasks.append(phen.build(task_cfg, train_cfg))
        trains.append(train_cfg)
    assert train_batched(runs, tasks, trains) == ["trained"] * len(cfgs)
    for a, b in zip(single, runs):
        ma, mb = a.metrics(), b.metrics()
        assert (ma[["step", "key"]].values == mb[["step", "key"]].values).all()
        np.testing.assert_allclose(mb["value"], ma["value"], rtol=1e-5, atol=1e-5)
        gram = ma["key"].isin(["updates/gram_gap", "updates/gram_top_frac"])
        assert gram.sum() >= 2  # the update Gram spectrum is logged on both paths
        np.testing.assert_allclose(mb["value"][gram], ma["value"][gram], rtol=1e-5, atol=0)
        assert a.checkpoint_steps() == b.checkpoint_steps()
    # members really differ (different seeds and hyperparameters)
    m0, m1 = runs[0].metrics(), runs[1].metrics()
    assert not np.allclose(m0["value"], m1["value"])


def test_members_of_different_shapes_do_not_share_a_batch():
    a = resolve_config("grokking", "quick", GROKKING)
    b = resolve_config("grokking", "quick", GROKKING | {"d_mlp": 64})
    c = resolve_config("grokking", "quick", GROKKING | {"seed": 3, "lr": 0.1, "train_frac": 0.2})
    phen = configs(a)[0]
    assert batch_key(phen, a) != batch_key(phen, b)
    assert batch_key(phen, a) == batch_key(phen, c)


def test_batched_resume_keeps_the_update_window(tmp_path, monkeypatch):
    """Members interrupted between checkpoints resume (batched, or one as a single run)
    with the update window stored in their optimiser state: batched members reproduce the
    uninterrupted metrics bit for bit, ``updates/…`` included; the single one within the
    batched-vs-single tolerance."""
    cfgs = [resolve_config("grokking", "quick", GROKKING | {"seed": k}) for k in range(3)]

    def start(root, states=None, begin=0, members=None):
        runs, tasks, trains = [], [], []
        for k, c in enumerate(cfgs):
            if members is not None and k not in members:
                continue
            phen, task_cfg, train_cfg = configs(c)
            runs.append(root[k] if isinstance(root, list) else create_run(root, f"s{k}", c, {}))
            tasks.append(phen.build(task_cfg, train_cfg))
            trains.append(train_cfg)
        train_batched(runs, tasks, trains, start=begin, states=states)
        return runs

    straight = start(tmp_path / "a")
    real, calls = StackedAdamW.step, {"n": 0}

    def dying_step(self, step):
        calls["n"] += 1
        if calls["n"] == 25:  # between the checkpoints at steps 20 and 30
            raise KeyboardInterrupt
        real(self, step)

    monkeypatch.setattr(StackedAdamW, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        start(tmp_path / "b")
    monkeypatch.setattr(StackedAdamW, "step", real)
    killed = [open_run(p) for p in sorted((tmp_path / "b").iterdir())]
    points = [rd.resume_point() for rd in killed]
    assert {p[0] for p in points} == {20} and all(STATE_KEY in p[2]["state"] for p in points)
    phen, task_cfg, train_cfg = configs(cfgs[0])
    train(killed[0], phen.build(task_cfg, train_cfg), train_cfg, resume=True, progress=False)
    start(killed, states=[p[1:] for p in points[1:]], begin=20, members={1, 2})
    for k, (a, b) in enumerate(zip(straight, killed)):
        ma, mb = a.metrics(), b.metrics()
        assert (ma["key"] == "updates/gram_gap").sum() == 7  # eval steps 10..40
        if k == 0:
            assert (ma[["step", "key"]].values == mb[["step", "key"]].values).all()
            np.testing.assert_allclose(mb["value"], ma["value"], rtol=1e-5, atol=1e-5)
        else:
            pd.testing.assert_frame_equal(ma, mb)
