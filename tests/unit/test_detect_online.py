"""The online early-warning detector gives exactly ``detect``'s scores and warnings."""

from __future__ import annotations

import numpy as np
import pandas as pd

from phasewatch.detect import ews
from phasewatch.detect.online import OnlineDetector
from phasewatch.detect.run import DetectConfig, series_scores
from phasewatch.detect.synthetic import planted_ar1
from phasewatch.detect.transitions import run_series

PLANNED = 3000


def _series() -> dict[str, pd.Series]:
    rng = np.random.default_rng(0)
    steps = np.arange(0, PLANNED, 10)
    n = len(steps)
    crit = planted_ar1(np.clip(np.arange(n) / (0.7 * n) * 0.98, 0, 0.98), seed=1)  # slowing down
    return {
        "crit": pd.Series(crit, index=steps),
        "loss": pd.Series(10.0 ** (-np.linspace(0, 4, n) + 0.05 * rng.normal(size=n)), steps),
        "noise": pd.Series(rng.normal(size=n), index=steps),
        "const": pd.Series(np.full(n, 3.0), index=steps),
        "sparse": pd.Series(rng.normal(size=n // 5), index=steps[::5]),
        "fourier/embed_norm/3": pd.Series(rng.normal(size=n), index=steps),
    }


def _feed(series: dict[str, pd.Series], chunk: int, cfg: DetectConfig):
    fired = []
    det = OnlineDetector(PLANNED, cfg, on_warning=fired.append)
    steps = sorted({int(s) for v in series.values() for s in v.index})
    for i, step in enumerate(steps):
        det.add(step, {k: float(v[step]) for k, v in series.items() if step in v.index})
        if i % chunk == 0:
            det.update()
    det.update()
    return det, fired


def test_online_scores_and_warnings_equal_detect_for_any_update_cadence():
    series, cfg = _series(), DetectConfig(surrogates=30)
    tidy = pd.concat(
        [
            pd.DataFrame({"step": v.index, "key": k, "value": v.to_numpy()})
            for k, v in series.items()
        ]
    )
    offline = series_scores(run_series(tidy), PLANNED, 0, cfg)
    assert set(offline) == {"crit", "loss", "noise", "sparse"}
    for chunk in (1, 7, 1000):
        det, fired = _feed(series, chunk, cfg)
        online = det.scored()
        assert set(online) == set(offline)
        for key, ss in offline.items():
            np.testing.assert_array_equal(online[key].steps, ss.steps)
            for name, v in ss.scores.items():
                np.testing.assert_array_equal(online[key].scores[name], v)  # bit for bit
            th = ss.surrogate_thresholds()
            assert det.thresholds()[key] == th
            for name in ews.INDICATORS:
                step = ews.first_warning(ss.steps, ss.scores[f"tau_{name}"], th[name])
                got = [w.step for w in fired if w.key == key and w.indicator == name]
                assert got == ([] if step is None else [step]), (chunk, key, name)
    assert fired  # the comparison covers warnings, not only their absence


def test_online_warning_is_readable_and_skips_non_finite_values():
    series = _series()
    series["crit"] = series["crit"].copy()
    series["crit"].iloc[50] = np.nan
    det, fired = _feed(series, 1, DetectConfig(surrogates=30))
    w = fired[0]
    assert str(w).startswith(f"early warning at step {w.step:,}: ") and w.key in str(w)
    assert w.tau >= w.threshold
    assert 10 * 50 not in det.series["crit"].steps
