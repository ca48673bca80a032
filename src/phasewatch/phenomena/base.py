"""The contract between a phenomenon module and the trainer, store and CLI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
from torch import Tensor

from phasewatch.config import OnsetRule, TrainConfig, require_choice
from phasewatch.training.task import Task


@dataclass
class Findings:
    """What a phenomenon's whole-run analysis adds to the store.

    Attributes:
        rows: tidy metric rows ``(step, key, value)`` merged into ``metrics.parquet``
            (existing rows with the same keys are replaced).
        events: entries merged into ``events.json`` (e.g. ``key_frequencies``).
        tables: named DataFrames written to ``tables/<name>.parquet`` for the report
            (e.g. attention patterns of the top induction head).
        exports: folders of the run written by callbacks ``write(folder)`` (e.g. ``hf``:
            a model in Hugging Face format); each is written beside and renamed into place.
    """

    rows: list[tuple[int, str, float]] = field(default_factory=list)
    events: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    exports: dict[str, Callable[[Path], Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Preset:
    """A named, complete configuration: the phenomenon's config plus the training loop's.

    Attributes:
        task: the phenomenon's config.
        train: the training loop's config.
        description: one line for ``phasewatch presets``.
        signals: default settings fields per signal calibrated for this preset's model
            (``{"llc": {"epsilon": 1e-4}}``; ``measure`` applies them under the user's
            flags); say in a comment how they were calibrated.
    """

    task: Any
    train: TrainConfig
    description: str
    signals: dict[str, dict[str, Any]] = field(default_factory=dict)


class Phenomenon(Protocol):
    """What a phenomenon module registers.

    Attributes:
        name: registry key (``grokking``).
        config_cls: its frozen config dataclass.
        presets: named presets; ``default_preset`` is used when none is given.
        onsets: behavioural onset rules written to ``events.json``.

    A phenomenon may also define ``hindsight_keys``: metric keys whose value at a step
    depends on later weights (e.g. measures relative to the final model); forecasting
    leaves them out (:func:`hindsight_keys`).
    """

    name: str
    config_cls: type
    presets: dict[str, Preset]
    default_preset: str
    onsets: tuple[OnsetRule, ...]

    def build(self, cfg: Any, train: TrainConfig) -> Task:
        """One seed's :class:`~phasewatch.training.task.Task` (model, data, per-eval
        measures) for the phenomenon's config ``cfg`` and the loop's ``train`` (its seed
        and device)."""
        ...

    def checkpoint_measures(
        self,
        cfg: Any,
        train: TrainConfig,
        checkpoints: Iterator[tuple[int, dict[str, Tensor]]],
        final: dict[str, Tensor],
    ) -> Findings:
        """Progress measures that need the whole run (e.g. the final model's key frequencies),
        computed from the stored checkpoints (ascending steps) and the final weights."""
        ...


_REGISTRY: dict[str, Phenomenon] = {}


def register(phenomenon: Phenomenon) -> Phenomenon:
    """Add ``phenomenon`` to the registry under its ``name`` (replacing any with that name)
    and return it, so a module can end with ``register(MyPhenomenon())``."""
    _REGISTRY[phenomenon.name] = phenomenon
    return phenomenon


def names() -> list[str]:
    """The registered phenomena's names, sorted."""
    return sorted(_REGISTRY)


def hindsight_keys(name: str) -> frozenset[str]:
    """The ``hindsight_keys`` of phenomenon ``name`` (empty for an unregistered name such as
    ``watch`` or ``imported``, or a phenomenon without any)."""
    return frozenset(getattr(_REGISTRY.get(name), "hindsight_keys", ()))


def get(name: str) -> Phenomenon:
    """The registered phenomenon ``name``; :class:`ConfigError` lists the allowed names."""
    require_choice("phenomenon", name, names())
    return _REGISTRY[name]


def preset(phenomenon: Phenomenon, name: str | None) -> Preset:
    """The preset ``name`` of ``phenomenon`` (its ``default_preset`` for None).

    Raises:
        ConfigError: if the phenomenon has no preset ``name`` (the error lists them).
    """
    name = name or phenomenon.default_preset
    require_choice("preset", name, sorted(phenomenon.presets))
    return phenomenon.presets[name]
