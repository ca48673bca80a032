"""Batched seeds: K members trained as one stacked model give the metrics of K single runs.

Tolerance: every logged metric agrees within |a - b| <= 1e-5 + 1e-5·|a| (float32 round-off
of batched vs separate kernels and of our AdamW vs torch's fused one; measured here: at
most 5e-7 absolute / 4e-6 relative after 30-200 steps).
"""

from __future__ import annotations

import numpy as np
import pytest
from tiny_configs import GROKKING as TINY_GROKKING

from phasewatch.api import _configs, resolve_config
from phasewatch.store.run import create_run
from phasewatch.training import train
from phasewatch.training.batched import batch_key, train_batched

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
    keys = {batch_key(_configs(c)[0], c) for c in cfgs}
    assert len(keys) == 1  # they may share a batch
    single = []
    for c in cfgs:
        rd = create_run(tmp_path / "single", "r", c, {})
        phen, task_cfg, train_cfg = _configs(c)
        train(rd, phen.build(task_cfg, train_cfg), train_cfg, progress=False)
        single.append(rd)
    runs, tasks, trains = [], [], []
    for c in cfgs:
        runs.append(create_run(tmp_path / "batched", "r", c, {}))
        phen, task_cfg, train_cfg = _configs(c)
        tasks.append(phen.build(task_cfg, train_cfg))
        trains.append(train_cfg)
    assert train_batched(runs, tasks, trains) == ["trained"] * len(cfgs)
    for a, b in zip(single, runs):
        ma, mb = a.metrics(), b.metrics()
        assert (ma[["step", "key"]].values == mb[["step", "key"]].values).all()
        np.testing.assert_allclose(mb["value"], ma["value"], rtol=1e-5, atol=1e-5)
        assert a.checkpoint_steps() == b.checkpoint_steps()
    # members really differ (different seeds and hyperparameters)
    m0, m1 = runs[0].metrics(), runs[1].metrics()
    assert not np.allclose(m0["value"], m1["value"])


def test_members_of_different_shapes_do_not_share_a_batch():
    a = resolve_config("grokking", "quick", GROKKING)
    b = resolve_config("grokking", "quick", GROKKING | {"d_mlp": 64})
    c = resolve_config("grokking", "quick", GROKKING | {"seed": 3, "lr": 0.1, "train_frac": 0.2})
    phen = _configs(a)[0]
    assert batch_key(phen, a) != batch_key(phen, b)
    assert batch_key(phen, a) == batch_key(phen, c)
