"""The training plan of a sweep: which members train together, as one batched model.

The unit of work is a list of members trained either one after another or as one
batched model (:mod:`phasewatch.training.batched`); :func:`plan` groups the unfinished
members into units and :mod:`phasewatch.sweep.executors` runs them.

**Strategy rule** (``strategy: auto``): batching pays where one member leaves the CPU
idle (small models and batches) and not where one member is already compute-bound, so
before training the driver measures, with one thread, the seed-steps/s of one member
trained alone and of a batch of up to 16 members of the largest group that can batch
(``bench/sweep.py`` prints the same comparison). It batches if the batch is at least
1.2x faster per member. The decision and the measurement are stored in ``sweep.json``
(``plan``) and reused when the sweep is resumed with the same ``strategy``. Batches have
at most 16 members and are split so that every worker gets one (``ceil(group /
workers)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from phasewatch.config import available_cores

BATCH_GAIN = 1.2  # batch if its seed-steps/s beat one member's by this factor


def _measure(group: Sequence[Any]) -> dict[str, float]:
    """One-thread seed-steps/s of one member alone and of a batch of up to 16 members."""
    import torch

    from phasewatch.api import configs
    from phasewatch.training import batched

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        built = [configs(m.config) for m in group[: batched.MAX_BATCH]]
        phen, task_cfg, train_cfg = built[0]
        single = batched.single_rate(phen.build(task_cfg, train_cfg), train_cfg)
        tasks = [p.build(t, c) for p, t, c in built]
        together = batched.batched_rate(tasks, [c for _, _, c in built])
    finally:
        torch.set_num_threads(threads)
    return {
        "members": len(built),
        "single_seed_steps_per_s": round(single, 2),
        "batched_seed_steps_per_s": round(together, 2),
    }


def _decide(
    spec: Any, phen: Any, groups: dict[str | None, list[Any]], stored: dict[str, Any] | None
) -> dict[str, Any]:
    """The strategy (``single`` or ``batched``) with its reason (and measurement)."""
    from phasewatch.training import batched

    if stored is not None and stored.get("requested") == spec.strategy:
        return stored
    if spec.strategy == "single" or not batched.can_batch(phen):
        why = "requested" if spec.strategy == "single" else f"{phen.name} cannot batch"
        return {"strategy": "single", "reason": why}
    if spec.strategy == "batched":
        return {"strategy": "batched", "reason": "requested"}
    biggest = max(groups.values(), key=len, default=[])
    if len(biggest) < 2:
        return {"strategy": "single", "reason": "no two members can share a batch"}
    rates = _measure(biggest)
    gain = rates["batched_seed_steps_per_s"] / rates["single_seed_steps_per_s"]
    return {
        "strategy": "batched" if gain >= BATCH_GAIN else "single",
        "reason": f"measured: batched/single = {gain:.2f} (batch if >= {BATCH_GAIN})",
        **rates,
    }


def plan(
    spec: Any, todo: Sequence[Any], stored: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Units of work for the members in ``todo`` and the plan recorded in ``sweep.json``.

    Args:
        spec: the :class:`~phasewatch.sweep.spec.SweepSpec`.
        todo: the unfinished :class:`~phasewatch.sweep.spec.Member` s.
        stored: the plan of an earlier invocation (reused), or None.

    Returns:
        ``(units, decision)``: units as :func:`~phasewatch.sweep.executors.run_unit`
        takes them, and the decision (``strategy``, ``reason``, ``requested`` and, if
        measured, the seed-steps/s of both strategies).
    """
    from phasewatch import phenomena
    from phasewatch.training import batched

    phen = phenomena.get(spec.phenomenon)
    groups: dict[str | None, list[Any]] = {}
    for m in todo:
        groups.setdefault(batched.batch_key(phen, m.config), []).append(m)
    workers = spec.workers or available_cores()
    decision = _decide(spec, phen, groups, stored)
    decision["requested"] = spec.strategy
    units = []
    for key, group in groups.items():
        if decision["strategy"] == "batched" and key is not None:
            size = max(1, min(batched.MAX_BATCH, math.ceil(len(group) / workers)))
        else:
            size = 1
        for i in range(0, len(group), size):
            chunk = group[i : i + size]
            units.append(
                {
                    "members": [[str(m.path), m.config] for m in chunk],
                    "batched": size > 1,
                    "report": spec.report,
                }
            )
    return units, decision
