"""What ``Watcher.close()`` writes: the final config, the ``watch`` and ``detect`` blocks of
events.json (with the ``ews`` and ``change_points`` tables), status ``done``.

The ``detect`` block is :func:`phasewatch.detect.run.write_detect` fed with the online
detector's scores and thresholds (the same numbers ``phasewatch detect`` computes from the
stored run); only the change points and the target's onset, which are not warnings, are
computed here from the whole run. Change points (and the target's ``change_point`` onset)
only with ``WatchConfig(change_points=True)`` or a target whose onset definition is
``change_point``: their library (ruptures) imports scipy.stats, about a second of CPU,
more than the rest of ``close()``. ``phasewatch detect RUN`` adds them later.

Every function takes what it writes as explicit arguments (the run directory, the
:class:`~phasewatch.watch.config.WatchConfig`, the detector, what the Watcher observed);
none reads the Watcher itself.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from phasewatch.detect.changepoints import ChangePointConfig, change_points
from phasewatch.detect.online import OnlineDetector
from phasewatch.detect.run import RunAnalysis, write_detect
from phasewatch.detect.transitions import run_series, target_onsets
from phasewatch.store import RunDir
from phasewatch.store.atomic import write_json
from phasewatch.store.signals import read_signals
from phasewatch.watch.config import EXPENSIVE, WatchConfig

log = logging.getLogger("phasewatch.watch")
CALIBRATION = "AR(1) surrogates of each series' burn-in"  # as detect.run.write_with_surrogates


def no_target() -> dict[str, Any]:
    """The ``detect`` block's target entry of a run watched without a target."""
    return {"key": None, "op": None, "threshold": None, "definition": None, "step": None, "all": {}}


def write_detect_block(rd: RunDir, config: WatchConfig, detector: OnlineDetector) -> list[str]:
    """Write the ``detect`` block from the online detector (see module docstring).

    Args:
        rd: the watched run, its metrics and signals already flushed.
        config: the Watcher's config (``target``, ``detect``).
        detector: the online detector (planned steps: ``config.steps``), updated with
            every point.

    Returns:
        Problems to report (a target that was never logged).
    """
    cfg, target = config.detect, config.target
    series = run_series(rd.metrics(), read_signals(rd))
    cp_cfg = ChangePointConfig(penalty=cfg.penalty)
    problems = []
    if target is not None and target.key in series:
        found = target_onsets(series[target.key], target, cp_cfg, 0,
                              with_change_point=config.change_points)  # fmt: skip
    else:
        found = no_target()
        if target is not None:
            problems.append(f"target {target.key!r} was never logged")
    cps = {}
    if config.change_points:
        cps = {
            k: change_points(s.index.to_numpy(), s.to_numpy(), cp_cfg) for k, s in series.items()
        }
    settled = int(cfg.window_frac * detector.planned)
    an = RunAnalysis(rd, found, 0, cps, detector.scored(), series, settled)
    write_detect(an, detector.thresholds(), cfg, CALIBRATION)
    return problems


def finish_config(rd: RunDir, last_step: int | None, background: bool) -> None:
    """Rewrite config.json with what is known at the end: ``train.steps`` (when no plan
    was given, the steps actually watched, as ``detect`` needs a length) and whether the
    expensive signals ran in the ``background`` (False if it fell back inline)."""
    cfg = rd.config()
    if cfg["train"]["steps"] is None:
        cfg["train"]["steps"] = (last_step or 0) + 1
    cfg["train"]["background"] = background
    write_json(rd.path / "config.json", cfg)


def watch_block(
    config: WatchConfig,
    resolved: dict[str, Any],
    *,
    background: bool,
    disabled: dict[str, str],
    problems: list[str],
    overhead: dict[str, float],
    warnings: list[Any],
    last_step: int | None,
    checkpoints: list[int],
) -> dict[str, Any]:
    """The ``watch`` block of events.json.

    Args:
        config: the Watcher's config (signal cadences).
        resolved: each measured signal's settings object, ``{name: settings}``.
        background: whether the expensive signals ran in the background thread.
        disabled: ``{signal: reason}`` of signals disabled after an error.
        problems: the problems logged during the run.
        overhead: ``Watcher.overhead()`` (seconds and percentages).
        warnings: the :class:`~phasewatch.detect.online.EarlyWarning` s that fired.
        last_step: the last training step seen (None: none).
        checkpoints: the steps with a saved checkpoint.
    """
    return {
        "signals": {
            n: {
                "every": config.cadence(n),
                "where": "background" if background and n in EXPENSIVE else "inline",
                "settings": dataclasses.asdict(s),
            }
            for n, s in resolved.items()
        },
        "disabled": dict(disabled),
        "problems": list(problems),
        "overhead": overhead,
        "warnings": [dataclasses.asdict(x) for x in warnings],
        "last_step": last_step,
        "checkpoints": checkpoints,
        "change_points": config.change_points,  # computed at close (else: phasewatch detect)
    }


def write_watch_block(rd: RunDir, block: dict[str, Any]) -> None:
    """Add the ``watch`` block to events.json, mark the run ``done`` and log a summary
    (overhead, warnings, disabled signals)."""
    events = dict(rd.events())
    events["watch"] = block
    rd.write_events(events)
    rd.set_status("done", block["last_step"] or 0)
    o = block["overhead"]
    log.info(
        "phasewatch Watcher: %s closed; overhead %.2f s in the loop = %.1f%% of step time "
        "(%.1f%% with set-up and close); %d early warning(s); disabled signals: %s",
        rd.path,
        o["loop_seconds"],
        o["percent_of_step_time"],
        o["percent_with_setup_and_close"],
        len(block["warnings"]),
        ", ".join(f"{k} ({v})" for k, v in block["disabled"].items()) or "none",
    )
