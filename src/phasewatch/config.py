"""Configuration shared by every run: seed, device, optimiser and cadence.

Configs are frozen dataclasses validated in ``__post_init__``; a bad value raises
:class:`~phasewatch.errors.ConfigError` naming the field and the allowed values.
Phenomenon-specific settings live in each phenomenon's own config dataclass.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from phasewatch.errors import ConfigError


def require(ok: bool, field: str, allowed: str, value: Any) -> None:
    """Raise :class:`ConfigError` naming ``field``, the bad ``value`` and what is allowed."""
    if not ok:
        raise ConfigError(f"{field}={value!r} is invalid; allowed: {allowed}")


def require_choice(field: str, value: Any, choices: Iterable[Any]) -> None:
    """Require ``value`` to be one of ``choices``.

    Raises:
        ConfigError: naming ``field``, ``value`` and the allowed choices.
    """
    choices = list(choices)
    require(value in choices, field, ", ".join(map(str, choices)), value)


def require_finite(cfg: Any) -> None:
    """Require every float field of dataclass ``cfg`` (and every float in a tuple field) to
    be finite.

    Raises:
        ConfigError: naming the first field holding ``nan`` or ``inf``.
    """
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        items = value if isinstance(value, tuple) else (value,)
        ok = all(math.isfinite(v) for v in items if isinstance(v, float))
        require(ok, f.name, "a finite number (not nan or inf)", value)


def estimate_bytes(cfg: Any, *, copies: int = 1) -> int:
    """A cheap upper-bound guess of the peak memory of training a model of config ``cfg``.

    ``cfg.memory_bytes()`` if the config defines it, else the product of its two largest
    integer fields taken as a parameter count, at 4 bytes per float and 4 floats per
    parameter (weights, gradients, two Adam moments); times ``copies`` (seeds trained in
    one batched model).
    """
    if hasattr(cfg, "memory_bytes"):
        return cfg.memory_bytes() * copies
    sizes = sorted(
        (v for v in dataclasses.asdict(cfg).values() if type(v) is int and v > 0), reverse=True
    )
    params = math.prod(sizes[:2]) if sizes else 1
    return params * 16 * copies


def available_memory() -> int | None:
    """Bytes of RAM available now (psutil if installed, else ``os.sysconf``), or None."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def require_memory(what: str, needed: int) -> None:
    """Refuse a run whose estimated peak memory ``needed`` exceeds the available RAM.

    Raises:
        ConfigError: naming ``what`` (the fields that set the size) and the estimate.
    """
    free = available_memory()
    if free is not None and needed > free:
        raise ConfigError(
            f"{what}: an estimated {needed / 2**30:,.1f} GiB of memory is needed, "
            f"{free / 2**30:,.1f} GiB is available; allowed: smaller sizes"
        )


def available_cores() -> int:
    """CPU cores this process may run on: its CPU affinity (``taskset``, a container's
    cpuset), else the machine's CPU count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no affinity on this platform (macOS, Windows)
        return os.cpu_count() or 1


MAX_SEED = 2**63 - 1
OPTIMIZERS = ("adamw", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """The training loop's settings, common to all phenomena.

    Attributes:
        seed: seeds data generation and initialisation (an integer in [0, 2**63 - 1]).
        steps: number of optimiser updates.
        optimizer: ``adamw`` (default) or ``sgd`` (plain gradient descent, no momentum:
            the gradient-flow setting of Saxe et al. 2014; betas are then unused).
        lr: peak learning rate.
        weight_decay: decoupled weight decay of AdamW, or SGD's L2 weight decay (applied
            to every parameter).
        beta1, beta2: AdamW's moment coefficients.
        warmup_steps: linear warm-up of the learning rate over the first steps (0 = none).
        eval_every: cadence, in steps, of metrics (loss, accuracy, progress measures).
        checkpoint_every: cadence, in steps, of safetensors checkpoints (also the resume points).
        device: torch device string (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
        threads: CPU threads for torch (0 = the cores this process may run on).
    """

    seed: int = 0
    steps: int = 10_000
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.98
    warmup_steps: int = 10
    eval_every: int = 100
    checkpoint_every: int = 1_000
    device: str = "cpu"
    threads: int = 0

    def __post_init__(self) -> None:
        require_finite(self)
        require(0 <= self.seed <= MAX_SEED, "seed", "an integer in [0, 2**63 - 1]", self.seed)
        require(self.steps >= 1, "steps", "an integer >= 1", self.steps)
        require_choice("optimizer", self.optimizer, OPTIMIZERS)
        require(self.lr > 0, "lr", "a float > 0", self.lr)
        require(self.weight_decay >= 0, "weight_decay", "a float >= 0", self.weight_decay)
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            require(0 <= v < 1, name, "a float in [0, 1)", v)
        require(self.warmup_steps >= 0, "warmup_steps", "an integer >= 0", self.warmup_steps)
        require(self.eval_every >= 1, "eval_every", "an integer >= 1", self.eval_every)
        require(
            self.checkpoint_every >= 1, "checkpoint_every", "an integer >= 1", self.checkpoint_every
        )
        require(
            self.device.split(":")[0] in {"cpu", "cuda", "mps"},
            "device",
            "cpu, cuda, cuda:N, mps",
            self.device,
        )
        require(self.threads >= 0, "threads", "an integer >= 0 (0 = all cores)", self.threads)

    @property
    def num_threads(self) -> int:
        """Torch threads to train with: ``threads``, or if 0 the cores this process may
        run on (:func:`available_cores`; measured choice: docs/results/speed.md, "Threads on
        shared cores", ``bench/threads.py``)."""
        return self.threads or available_cores()


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config dataclass as a JSON-ready dict."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: dict[str, Any], *, where: str = "config"):
    """Build dataclass ``cls`` from ``data``; unknown keys or non-finite floats raise
    :class:`ConfigError`."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}"
        )
    cfg = cls(**data)
    require_finite(cfg)
    return cfg


def override(cfg: Any, values: dict[str, Any]) -> Any:
    """``dataclasses.replace`` restricted to the fields of ``cfg`` that appear in ``values``.

    Raises:
        ConfigError: on an invalid value, a non-finite float included.
    """
    names = {f.name for f in dataclasses.fields(cfg)}
    mine = {k: v for k, v in values.items() if k in names and v is not None}
    if not mine:
        return cfg
    new = dataclasses.replace(cfg, **mine)
    require_finite(new)
    return new


@dataclass(frozen=True)
class OnsetRule:
    """``kind='cross'``: first step with ``key op threshold``; ``kind='peak'``: argmax step.

    Attributes:
        name: event name in ``events.json`` (``memorisation``).
        key: metric key (``train/acc``).
        kind: ``cross`` or ``peak``.
        op: ``>=`` or ``<=`` (for ``cross``).
        threshold: crossing level (for ``cross``), in the metric's units.
    """

    name: str
    key: str
    kind: str = "cross"
    op: str = ">="
    threshold: float = 0.0

    def __post_init__(self) -> None:
        require_choice("kind", self.kind, ("cross", "peak"))
        require_choice("op", self.op, (">=", "<="))

    def describe(self) -> str:
        """The rule in words, e.g. ``first logged step with train/acc >= 0.99``."""
        if self.kind == "peak":
            return f"step of the maximum of {self.key}"
        return f"first logged step with {self.key} {self.op} {self.threshold:g}"
