"""Choosing a run's checkpoint: a requested step, or the last one."""

from __future__ import annotations

from phasewatch.errors import ConfigError, StoreError
from phasewatch.store.run import RunDir


def checkpoint_step(rd: RunDir, step: int | None = None) -> int:
    """``step`` if the run has a model checkpoint there; None means the last checkpoint.

    Raises:
        StoreError: if the run has no checkpoint at all.
        ConfigError: if ``step`` has none (the message lists the steps that have one).
    """
    steps = rd.checkpoint_steps()
    if not steps:
        raise StoreError(f"{rd.path}: no checkpoint; allowed: a run trained with checkpoints")
    if step is None:
        return steps[-1]
    if step not in steps:
        shown = ", ".join(map(str, steps[:20])) + (", ..." if len(steps) > 20 else "")
        raise ConfigError(f"--step {step}: no checkpoint at this step; allowed: {shown}")
    return step
