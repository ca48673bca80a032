"""The default `quick` preset shows delayed generalisation and Nanda et al.'s progress-measure
ordering. About a minute on 2 cores; runs in the default suite because it is the main job."""

from __future__ import annotations

import math

import pytest

from phasewatch import api
from phasewatch.detect.onsets import series


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    return api.run("grokking", out=tmp_path_factory.mktemp("quick"), progress=False)


def _first(s, below: float) -> int:
    hit = s[s < below]
    assert not hit.empty, f"{s.name} never fell below {below}"
    return int(hit.index[0])


def test_quick_preset_memorises_at_least_5x_before_it_generalises(quick_run):
    m = quick_run.metrics()
    train_acc, test_acc = series(m, "train/acc"), series(m, "test/acc")
    memorised = int(train_acc[train_acc >= 1.0].index[0])
    generalised = int(test_acc[test_acc >= 0.99].index[0])
    assert generalised >= 5 * memorised, (memorised, generalised)
    onsets = quick_run.events()["onsets"]
    assert onsets["generalisation"]["step"] == generalised
    assert test_acc.iloc[-1] >= 0.99


def test_restricted_loss_falls_before_test_loss(quick_run):
    """Nanda et al. 2023 §5.2: the restricted loss falls during circuit formation,
    before the test loss does; the excluded loss rises above its memorisation level."""
    m = quick_run.metrics()
    p = quick_run.config()["task"]["p"]
    level = 0.5 * math.log(p)  # half of chance
    restricted = series(m, "progress/restricted_loss")
    test = series(m, "test/loss")
    test_at_ckpt = test[test.index.isin(restricted.index)]
    assert _first(restricted, level) < _first(test_at_ckpt, level)
    excluded = series(m, "progress/excluded_loss")
    mem = quick_run.events()["onsets"]["memorisation"]["step"]
    gen = quick_run.events()["onsets"]["generalisation"]["step"]
    at_mem = excluded[excluded.index >= mem].iloc[0]
    assert excluded[(excluded.index > mem) & (excluded.index <= gen)].max() > at_mem


def test_key_frequencies_and_cleanup(quick_run):
    ev = quick_run.events()
    assert 1 <= len(ev["key_frequencies"]) <= 10  # a handful (Nanda et al.: 3-7 for p=113)
    m = quick_run.metrics()
    norm = series(m, "weights/total_norm")
    peak_step = int(norm.idxmax())
    assert norm.iloc[-1] < 0.8 * norm.max() and peak_step < ev["onsets"]["generalisation"]["step"]
    gini = series(m, "fourier/embed_gini")
    assert gini.iloc[-1] > gini.iloc[0] + 0.2  # the embedding becomes sparse in Fourier space


def test_causal_progress_measures_use_each_checkpoints_own_key_frequencies(quick_run):
    """The hindsight measures use the final model's key frequencies; their causal variants
    the checkpoint's own. At the final checkpoint the two sets coincide, so the values do;
    before the circuit forms there are no key frequencies and no causal row."""
    m = quick_run.metrics()
    for name in ("restricted_loss", "excluded_loss"):
        hind = series(m, f"progress/{name}")
        causal = series(m, f"progress/{name}_causal")
        assert len(causal) and set(causal.index) <= set(hind.index)
        last = hind.index[-1]
        assert causal[last] == pytest.approx(hind[last], rel=1e-9)
    assert series(m, "progress/restricted_loss_causal").index[0] > hind.index[0]
