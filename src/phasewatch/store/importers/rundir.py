"""What every importer shares: metric keys from foreign names, and the run directory an
imported series becomes (written whole into a temporary folder, then renamed).

An imported run is an ordinary run directory (:mod:`phasewatch.store.run`) with metrics
only: ``config.json`` (phenomenon ``imported``, preset = the source kind, ``task`` = where
the numbers came from, ``train.steps`` = the last logged step), ``env.json``,
``status.json`` (``done``), ``metrics.parquet`` (tidy step, key, value) and
``events.json`` (no onsets unless given). It has no checkpoints, so checkpoint signals
cannot be measured on it; ``detect``, ``leadtime``, ``forecast`` and ``report`` read only
these files.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from phasewatch.errors import ConfigError, StoreError
from phasewatch.store import atomic
from phasewatch.store.env import describe
from phasewatch.store.run import RunDir, tidy

IMPORTED = "imported"  # the ``phenomenon`` recorded in an imported run's config.json


def metric_key(name: str) -> str:
    """A phasewatch slash key for a foreign metric name: whitespace runs become ``_``,
    repeated slashes one, leading and trailing slashes go; case and ``/`` are kept
    (``train/loss`` and ``Loss/train`` stay as they are, ``val acc`` → ``val_acc``)."""
    key = re.sub(r"\s+", "_", name.strip())
    return re.sub(r"/+", "/", key).strip("/")


def key_map(names: Iterable[str], source: str | Path) -> dict[str, str]:
    """``{name: metric_key(name)}`` for every name.

    Raises:
        ConfigError: naming ``source`` if a name maps to an empty key or two names map to
            the same key.
    """
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name in names:
        key = metric_key(name)
        if not key:
            raise ConfigError(f"{source}: metric name {name!r} is empty once normalised")
        if key in seen:
            raise ConfigError(
                f"{source}: metric names {seen[key]!r} and {name!r} both become key {key!r}; "
                "allowed: names that differ in more than whitespace and slashes"
            )
        seen[key] = name
        out[name] = key
    return out


def parse_onsets(pairs: Iterable[str]) -> dict[str, int]:
    """``["memorisation=1200", ...]`` as ``{"memorisation": 1200}``.

    Raises:
        ConfigError: on a pair that is not ``NAME=STEP`` with an integer step >= 0.
    """
    out = {}
    for pair in pairs:
        name, sep, step = pair.partition("=")
        if not sep or not name.strip() or not step.strip().isdigit():
            raise ConfigError(f"--onset {pair!r} is invalid; allowed: NAME=STEP, e.g. grok=1200")
        out[name.strip()] = int(step)
    return out


@dataclass
class Series:
    """The metrics of one foreign run, ready to be written.

    Attributes:
        metrics: tidy step (int64), key (str), value (float64); no (step, key) twice, every
            value finite.
        kind: the source kind (``tensorboard`` or ``csv``), recorded as the preset.
        task: where the numbers came from (``source`` path, ``format``, renamed keys, ...),
            recorded as config.json ``task``.
        skipped: non-finite values left out.
        env: what read the source (e.g. ``{"reader": "tensorboard 2.21.0"}``), added to
            env.json beside the importing machine's description.
    """

    metrics: pd.DataFrame
    kind: str
    task: dict[str, Any]
    skipped: int = 0
    env: dict[str, Any] = field(default_factory=dict)

    @property
    def last_step(self) -> int:
        """The last logged step (the run's ``train.steps``)."""
        return int(self.metrics["step"].max())


@dataclass(frozen=True)
class Imported:
    """One run directory written by an importer.

    Attributes:
        run: the new run directory.
        keys: distinct metric keys.
        points: rows of ``metrics.parquet``.
        first_step, last_step: the range of logged steps.
        skipped: non-finite values left out.
    """

    run: RunDir
    keys: int
    points: int
    first_step: int
    last_step: int
    skipped: int

    def summary(self) -> str:
        """One line: the run, keys, points, step range and anything skipped."""
        skipped = f"; skipped {self.skipped} non-finite value(s)" if self.skipped else ""
        return (
            f"{self.run.path}: {self.keys} key(s), {self.points:,} point(s), steps "
            f"{self.first_step:,}–{self.last_step:,}{skipped}"
        )


def finite_rows(rows: list[tuple[int, str, float]]) -> tuple[pd.DataFrame, int]:
    """The tidy table of ``rows`` without non-finite values, and how many were dropped."""
    kept = [r for r in rows if math.isfinite(r[2])]
    return tidy(kept), len(rows) - len(kept)


def check_duplicates(df: pd.DataFrame, source: str | Path) -> None:
    """Raise :class:`ConfigError` naming ``source``, the key and the step if a (step, key)
    pair occurs twice in the tidy table ``df``."""
    dup = df[df.duplicated(["step", "key"], keep=False)]
    if not dup.empty:
        first = dup.sort_values(["key", "step"]).iloc[0]
        raise ConfigError(
            f"{source}: duplicate step {int(first['step'])} for key {first['key']!r} "
            f"({len(dup)} rows share a (step, key)); allowed: one value per step and key"
        )


def _write_one(path: Path, series: Series, onsets: dict[str, int]) -> None:
    config = {
        "phenomenon": IMPORTED,
        "preset": series.kind,
        "task": series.task,
        "train": {"steps": series.last_step},
    }
    atomic.write_json(path / "env.json", {**describe("cpu"), **series.env})
    run = RunDir(path)
    run.write_metrics(series.metrics)
    run.write_events(
        {"onsets": {k: {"step": s, "rule": "given at import"} for k, s in onsets.items()}}
    )
    run.set_status("done", series.last_step)
    atomic.write_json(path / "config.json", config)  # last: its presence marks a run


def write_runs(
    out: str | Path,
    runs: dict[str, Series],
    *,
    onsets: dict[str, int] | None = None,
    replace: bool = False,
) -> list[Imported]:
    """Write the imported runs: ``out`` itself for a single run named ``""``, else one
    sub-folder of ``out`` per name. Everything is written into a temporary folder beside
    ``out`` that is renamed onto it at the end, so a failure leaves nothing behind.

    Raises:
        StoreError: if ``out`` exists (and not ``replace``) or cannot be written.
    """
    out = Path(out)
    if out.exists() and not replace:
        raise StoreError(
            f"--out {out}: already exists; allowed: a new path (or --replace to overwrite it)"
        )

    def fill(tmp: Path) -> None:
        """Write every run into the temporary folder ``tmp`` (renamed onto ``out``)."""
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; give the run normal permissions
        for name, series in runs.items():
            path = tmp / name if name else tmp
            path.mkdir(parents=True, exist_ok=True)
            _write_one(path, series, onsets or {})

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_dir(out, fill)
    except OSError as e:
        raise StoreError(f"--out {out}: not writable ({e.strerror or e})") from None
    return [
        Imported(
            RunDir(out / name if name else out),
            int(s.metrics["key"].nunique()),
            len(s.metrics),
            int(s.metrics["step"].min()),
            s.last_step,
            s.skipped,
        )
        for name, s in runs.items()
    ]
