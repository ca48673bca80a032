"""The Watcher's time accounting: seconds spent inside ``step()`` by kind, one-off set-up
and close, the background thread's time, and the user's own time between ``step()`` calls
(the training loop's own work), so the overhead is a % of the loop's own time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

LOOP = ("signals", "detect", "io", "gather", "other")  # kinds of time inside step()
ONCE = ("setup", "close", "background", "background_cpu")


class Overhead:
    """Seconds the Watcher took (``time.perf_counter``), by kind.

    Attributes:
        loop: seconds inside ``step()``, by kind (:data:`LOOP`).
        once: set-up and close seconds, and the background thread's wall and CPU seconds
            (:data:`ONCE`).
        user_seconds: seconds between the end of one ``step()`` (or set-up) and the start
            of the next call: the training loop's own work.
        cpu: CPU seconds of the training thread (``time.thread_time``) inside ``step()``
            (``loop``) and between calls (``user``): unlike wall seconds,
            not inflated by other processes on a loaded machine.
    """

    def __init__(self) -> None:
        self.loop = dict.fromkeys(LOOP, 0.0)
        self.once = dict.fromkeys(ONCE, 0.0)
        self.user_seconds = 0.0
        self._last_return: float | None = None
        self._timed = 0.0
        self.cpu = {"loop": 0.0, "user": 0.0}
        self._cpu_return: float | None = None
        self._cpu_enter = 0.0

    def enter(self) -> float:
        """Start of a ``step()`` or ``close()``: count the user's time since the last
        return; return the start time."""
        t0, self._cpu_enter = time.perf_counter(), time.thread_time()
        self._timed = 0.0
        if self._last_return is not None:
            self.user_seconds += t0 - self._last_return
            self.cpu["user"] += self._cpu_enter - self._cpu_return
        return t0

    def leave(self, t0: float) -> None:
        """End of a ``step()`` started at ``t0``: time not given to a kind is ``other``."""
        self._last_return, self._cpu_return = time.perf_counter(), time.thread_time()
        self.loop["other"] += self._last_return - t0 - self._timed
        self.cpu["loop"] += self._cpu_return - self._cpu_enter

    def timing(self, kind: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, its seconds added to ``loop[kind]``; returns what it returns."""
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            dt = time.perf_counter() - t
            self.loop[kind] += dt
            self._timed += dt

    def report(self) -> dict[str, float]:
        """Seconds the Watcher took, and as % of the training loop's own time.

        Returns:
            ``<kind>_seconds`` inside ``step()`` (signals, detect, io, gather: FSDP's weights
            gathered for rank 0's replica, other),
            ``loop_seconds`` (their sum), ``setup_seconds`` and ``close_seconds`` (once),
            ``background_seconds``/``background_cpu_seconds`` (the background thread's
            wall and CPU time, beside training), ``user_seconds`` (time between ``step()``
            calls: the user's own work), ``percent_of_step_time`` (loop / user),
            ``percent_with_setup_and_close``, and the training thread's CPU seconds
            ``loop_cpu_seconds`` (in ``step()``) and ``user_cpu_seconds``
            with ``percent_of_step_cpu`` (their ratio); percentages are NaN before any
            user time.
        """
        loop = sum(self.loop.values())
        once = self.once["setup"] + self.once["close"]
        user = self.user_seconds

        def pct(x: float) -> float:
            """``x`` seconds as % of the user's time (2 decimals)."""
            return round(100.0 * x / user, 2) if user > 0 else float("nan")

        return {
            **{f"{k}_seconds": round(v, 4) for k, v in self.loop.items()},
            "loop_seconds": round(loop, 4),
            **{f"{k}_seconds": round(v, 4) for k, v in self.once.items()},
            "user_seconds": round(user, 4),
            "percent_of_step_time": pct(loop),
            "percent_with_setup_and_close": pct(loop + once),
            "loop_cpu_seconds": round(self.cpu["loop"], 4),
            "user_cpu_seconds": round(self.cpu["user"], 4),
            "percent_of_step_cpu": round(100.0 * self.cpu["loop"] / self.cpu["user"], 2)
            if self.cpu["user"] > 0
            else float("nan"),
        }
