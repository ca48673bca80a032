"""The metrics a user's loop hands to ``Watcher.step()``, checked and kept as tidy rows,
and the problems found on the way (each logged once, reported at ``close()``).

Nothing here raises on bad input: a step that is not an integer >= 0 or goes back, a
metric that is not a finite number, a key that is not a non-empty str, or a key logged
twice at one step is skipped and recorded as a problem.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

log = logging.getLogger("phasewatch.watch")


class Problems:
    """Problems of a watched run, each logged once per ``(kind, key)``.

    Attributes:
        messages: every problem's message, in the order found.
    """

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._said: set[tuple[str, str]] = set()

    def add(self, kind: str, message: str, key: str = "") -> None:
        """Log ``message`` (a warning) and keep it, unless ``(kind, key)`` was seen."""
        if (kind, key) not in self._said:
            self._said.add((kind, key))
            self.messages.append(message)
            log.warning("phasewatch Watcher: %s", message)


class MetricLog:
    """The user's metrics as tidy ``(step, key, value)`` rows.

    Args:
        problems: where skipped input is reported.

    Attributes:
        rows: every kept ``(step, key, value)``, value a finite float.
        last_step: the last step accepted (None before the first).
    """

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self.rows: list[tuple[int, str, float]] = []
        self.last_step: int | None = None
        self._logged: set[str] = set()  # keys logged at last_step

    def add(self, step: Any, metrics: dict[str, Any]) -> tuple[dict[str, float], bool] | None:
        """Keep ``metrics`` logged at ``step``.

        Args:
            step: the training step, an integer >= 0 that never decreases; the current
                step again adds metrics to it.
            metrics: flat slash-keyed numbers (floats, ints, 0-d tensors).

        Returns:
            ``(values kept, whether step is new)``, or None if the step was skipped.
        """
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            return self.problems.add("step", f"step={step!r} skipped; allowed: an integer >= 0")
        if self.last_step is not None and step < self.last_step:
            message = f"step {step} after {self.last_step} skipped; steps must not decrease"
            return self.problems.add("order", message)
        new = step != self.last_step  # else: more metrics for the current step (adapters)
        if new:
            self.last_step, self._logged = step, set()
        values = self.clean(step, metrics)
        for k in sorted(set(values) & self._logged):
            message = f"metric {k!r} logged twice at step {step}: kept the first"
            self.problems.add("repeat", message, k)
            del values[k]
        self._logged |= set(values)
        self.rows += [(step, k, v) for k, v in values.items()]
        return values, new

    def clean(self, step: int, metrics: dict[str, Any]) -> dict[str, float]:
        """The finite numbers of ``metrics`` with non-empty str keys, as floats; the rest
        reported to :attr:`problems` and dropped."""
        out = {}
        for key, v in metrics.items():
            try:
                x = float(v.item() if torch.is_tensor(v) else v)
            except (TypeError, ValueError, RuntimeError):
                message = f"metric {key!r} is not a number ({type(v).__name__})"
                self.problems.add("type", message, key)
                continue
            if not isinstance(key, str) or not key:
                message = f"metric key {key!r} skipped; allowed: a non-empty str"
                self.problems.add("key", message, key)
            elif not math.isfinite(x):
                self.problems.add("finite", f"metric {key!r} = {x} at step {step}: skipped", key)
            else:
                out[key] = x
        return out
