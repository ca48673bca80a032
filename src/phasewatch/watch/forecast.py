"""A saved forecaster watching a run (``Watcher(..., forecaster="model/")``).

The run-level forecast of :mod:`phasewatch.detect.forecast` made once, online, at the
forecaster's decision step, from the metrics and signals the Watcher has logged up to it
(:class:`~phasewatch.detect.forecast.online.OnlineForecaster`: equal to ``phasewatch
forecast apply`` on the same rows). The result is logged (a warning line, the tracker's
``forecast/score`` scalar and warnings text) and stored in events.json ``watch.forecast``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from phasewatch.detect.forecast.online import OnlineForecaster
from phasewatch.errors import ConfigError, StoreError
from phasewatch.watch.loggers import WARNINGS

log = logging.getLogger("phasewatch")


class ForecastWatch:
    """Feeds an :class:`OnlineForecaster` and announces its forecast once.

    Args:
        folder: a folder holding ``forecaster.json``.
        planned: the run's planned steps.
        out: the Watcher's trackers (``log_scalars``, ``log_text``).

    Raises:
        ConfigError: if the folder holds no valid forecaster, or its decision step cannot
            be found online (see :class:`OnlineForecaster`).
    """

    def __init__(self, folder: str | Path, planned: int, out: Any) -> None:
        try:
            self.online = OnlineForecaster(folder, planned)
        except StoreError as e:
            raise ConfigError(f"forecaster={str(folder)!r}: {e}") from None
        self.folder, self.out = str(folder), out

    def add(self, step: int, values: dict[str, float]) -> None:
        """Record one step's logged values."""
        self.online.add(step, values)

    def update(self) -> list:
        """Make the forecast if its decision step is reached (once); returns no warnings
        (the forecast is announced here)."""
        r = self.online.update()
        if r is not None:
            self.out.log_scalars(r.step, {"forecast/score": r.score})
            self.out.log_text(r.step, WARNINGS, str(r))
            log.warning("phasewatch: %s", r)
        return []

    def block(self) -> dict[str, Any] | None:
        """The ``watch.forecast`` entry: the forecast and the model folder (None before
        the decision step)."""
        r = self.online.result
        return None if r is None else dataclasses.asdict(r) | {"model": self.folder}


def forecast_watch(
    folder: str | Path | None, planned: int | None, out: Any
) -> ForecastWatch | None:
    """A :class:`ForecastWatch` for ``WatchConfig.forecaster`` (None without one)."""
    return None if folder is None or planned is None else ForecastWatch(folder, planned, out)


__all__ = ["ForecastWatch", "forecast_watch"]
