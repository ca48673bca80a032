"""What ``Watcher.close()`` writes: metrics, config, the ``watch`` and ``detect`` blocks of
events.json (with the ``ews`` and ``change_points`` tables), status ``done``.

The ``detect`` block is :func:`phasewatch.detect.run.write_detect` fed with the online
detector's scores and thresholds (the same numbers ``phasewatch detect`` computes from the
stored run); only the change points and the target's onset, which are not warnings, are
computed here from the whole run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

from phasewatch.detect.changepoints import ChangePointConfig, change_points
from phasewatch.detect.run import RunAnalysis, write_detect
from phasewatch.detect.transitions import run_series, target_onsets
from phasewatch.store.atomic import write_json
from phasewatch.store.signals import read_signals

if TYPE_CHECKING:
    from phasewatch.watch.watcher import Watcher

log = logging.getLogger("phasewatch.watch")
CALIBRATION = "AR(1) surrogates of each series' burn-in"  # as detect.run.write_with_surrogates


def no_target() -> dict[str, Any]:
    """The ``detect`` block's target entry of a run watched without a target."""
    return {"key": None, "op": None, "threshold": None, "definition": None, "step": None, "all": {}}


def write_detect_block(w: Watcher) -> dict[str, Any]:
    """The ``detect`` block from the online detector (see module docstring)."""
    cfg = w.detect_cfg
    series = run_series(w.rd.metrics(), read_signals(w.rd))
    cp_cfg = ChangePointConfig(penalty=cfg.penalty)
    if w.target is not None and w.target.key in series:
        onset = target_onsets(series[w.target.key], w.target, cp_cfg, 0)
    else:
        onset = no_target()
        if w.target is not None:
            w._problem("target", f"target {w.target.key!r} was never logged")
    cps = {k: change_points(s.index.to_numpy(), s.to_numpy(), cp_cfg) for k, s in series.items()}
    settled = int(cfg.window_frac * w.steps)
    an = RunAnalysis(w.rd, onset, 0, cps, w.detector.scored(), series, settled)
    return write_detect(an, w.detector.thresholds(), cfg, CALIBRATION)


def close_run(w: Watcher, t0: float) -> dict[str, Any]:
    """Write the run directory's final files (``Watcher.close``'s work); return the watch block."""
    w._flush("running")
    cfg = w.rd.config()
    if cfg["train"]["steps"] is None:  # detect needs a length: the steps actually watched
        cfg["train"]["steps"] = (w.last_step or 0) + 1
    cfg["train"]["background"] = w.background
    write_json(w.rd.path / "config.json", cfg)
    if w.detector is not None:
        write_detect_block(w)
    w.once["close"] = time.perf_counter() - t0
    block = {
        "signals": {
            n: {
                "every": w.expensive_every if n in _expensive() else w.every,
                "where": "background" if w.background and n in _expensive() else "inline",
                "settings": dataclasses.asdict(s),
            }
            for n, s in w.resolved.items()
        },
        "disabled": w.disabled,
        "problems": w.problems,
        "overhead": w.overhead(),
        "warnings": [dataclasses.asdict(x) for x in (w.detector.warnings if w.detector else [])],
        "last_step": w.last_step,
        "checkpoints": w.rd.checkpoint_steps(),
    }
    events = dict(w.rd.events())
    events["watch"] = block
    w.rd.write_events(events)
    w.rd.set_status("done", w.last_step or 0)
    o = block["overhead"]
    log.info(
        "phasewatch Watcher: %s closed; overhead %.2f s in the loop = %.1f%% of step time "
        "(%.1f%% with set-up and close); %d early warning(s); disabled signals: %s",
        w.rd.path,
        o["loop_seconds"],
        o["percent_of_step_time"],
        o["percent_with_setup_and_close"],
        len(block["warnings"]),
        ", ".join(f"{k} ({v})" for k, v in w.disabled.items()) or "none",
    )
    return block


def _expensive() -> frozenset[str]:
    from phasewatch.watch.watcher import EXPENSIVE

    return EXPENSIVE
