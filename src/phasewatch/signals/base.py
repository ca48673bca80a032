"""The signal contract: a :class:`Probe` in, flat slash-keyed floats out, and a registry.

A *signal* is a phenomenon-agnostic measurement of one checkpoint (DESIGN.md, "signals/").
Adding one is a single decorated function::

    @dataclass(frozen=True)
    class CurvatureSettings:
        probes: int = 8

    @signal("curvature", settings=CurvatureSettings)
    def curvature(probe: Probe, settings: CurvatureSettings, *, generator) -> dict[str, float]:
        ...
        return {"curvature/mean": value}

The function receives the model with a checkpoint loaded, a loss closure on a fixed
probe batch, the batch size ``n``, a typed settings dataclass and a keyword-only
:class:`torch.Generator` (the only source of randomness, so results are reproducible
per ``(seed, step)``). It returns ``{key: float}`` or a :class:`Measurement` when it
also has tables (e.g. SGLD loss traces) or warnings. Signals never import a phenomenon.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
import torch
from torch import Tensor, nn

from phasewatch.config import from_dict, require_choice


@dataclass
class Probe:
    """One checkpoint, ready to be measured.

    Attributes:
        model: the model with the checkpoint's weights loaded. Signals may perturb its
            parameters in place but must restore them before returning.
        loss: ``loss() -> Tensor`` scalar mean loss (nats per sample) of the model's
            *current* parameters on a fixed probe batch (the task's training loss at
            ``step``); differentiable with respect to the parameters.
        n: number of samples in the probe batch (sets the LLC's default inverse
            temperature ``nβ = n / log n``).
        step: the checkpoint's training step (updates).
        per_sample_loss: optional ``() -> Tensor (n,)`` of per-sample losses (nats) whose
            mean is ``loss()``; needed by the gradient noise scale.
        inputs: optional model inputs of the probe batch; ``model(*inputs)`` fires the
            model's hook points (residual-stream geometry).
        previous: optional state dict of the preceding checkpoint (``grad/cos_prev``).
        previous_step: the step of ``previous``.
        logits: optional ``(rows=None) -> Tensor (rows, classes)`` of a classifier's logits
            on the probe batch, differentiable w.r.t. the parameters (``logit_scale``,
            ``ntk_alignment``); a row is a sample or, for a sequence model, one
            (sequence, position) prediction (the task may cap their number). Given an
            int64 index tensor ``rows``, only those rows, in that order.
        targets: optional ``() -> Tensor``: int64 labels ``(rows,)`` matching ``logits``,
            or float regression targets ``(rows, k)`` matching ``outputs``.
        outputs: optional ``(rows=None) -> Tensor (rows, k)`` of a regression model's
            outputs on the probe batch (a model without logits), differentiable w.r.t. the
            parameters; ``rows`` as for ``logits``.
    """

    model: nn.Module
    loss: Callable[[], Tensor]
    n: int
    step: int = 0
    per_sample_loss: Callable[[], Tensor] | None = None
    inputs: tuple[Any, ...] | None = None
    previous: dict[str, Tensor] | None = None
    previous_step: int | None = None
    logits: Callable[..., Tensor] | None = None
    targets: Callable[[], Tensor] | None = None
    outputs: Callable[..., Tensor] | None = None

    def params(self) -> list[nn.Parameter]:
        """The trainable parameters, in ``named_parameters`` order."""
        return [p for p in self.model.parameters() if p.requires_grad]


@dataclass
class Measurement:
    """What a signal returns when it has more than scalars.

    Attributes:
        values: flat slash-keyed floats (``llc/mean``, ``hessian/top_eig/0``).
        tables: named tidy DataFrames for the report (written to ``tables/<name>.parquet``
            with ``step`` and ``settings`` columns added), e.g. ``llc_traces``.
        warnings: human-readable problems (a diverged SGLD chain, ...); the runner prints
            them and records them in ``signals.json``; the measurement itself continues.
    """

    values: dict[str, float]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class SignalFn(Protocol):
    def __call__(
        self, probe: Probe, settings: Any, *, generator: torch.Generator
    ) -> dict[str, float] | Measurement: ...


@dataclass(frozen=True)
class NoSettings:
    """Settings of a signal that has none."""


@dataclass(frozen=True)
class Signal:
    """A registered signal: its name, function and settings dataclass.

    Attributes:
        name: registry key (``llc``).
        fn: ``fn(probe, settings, *, generator)`` for a ``checkpoint`` signal, or
            ``fn(history, settings, *, generator)`` for a ``trajectory`` signal
            (:mod:`.trajectory`).
        settings_cls: the frozen settings dataclass.
        kind: ``checkpoint`` (one checkpoint) or ``trajectory`` (what the run logged up
            to the step).
        needs: per-checkpoint signals whose tables a trajectory signal reads; they are
            measured first on the same checkpoints.
    """

    name: str
    fn: Any
    settings_cls: type
    kind: str = "checkpoint"
    needs: tuple[str, ...] = ()

    def settings(self, value: Any = None) -> Any:
        """``value`` as this signal's settings: None → defaults, a dict → validated fields.

        Raises:
            ConfigError: on an unknown field or an invalid value.
        """
        if value is None:
            return self.settings_cls()
        if isinstance(value, dict):
            return from_dict(self.settings_cls, value, where=f"{self.name} settings")
        if not isinstance(value, self.settings_cls):
            raise TypeError(f"{self.name}: settings must be {self.settings_cls.__name__}")
        return value

    def run(self, probe: Any, settings: Any, *, generator: torch.Generator) -> Measurement:
        """Measure ``probe`` with ``settings``; a plain dict result becomes a
        :class:`Measurement` of those values.

        Args:
            probe: the model at one step, its loss and probe size (a :class:`Probe`), or
                for a trajectory signal the run's :class:`~.trajectory.History` up to it.
            settings: this signal's settings object (see :meth:`settings`).
            generator: the only source of randomness (keyword-only, for reproducibility).
        """
        out = self.fn(probe, settings, generator=generator)
        return out if isinstance(out, Measurement) else Measurement(dict(out))


_REGISTRY: dict[str, Signal] = {}


def signal(name: str, *, settings: type = NoSettings) -> Callable[[SignalFn], SignalFn]:
    """Decorator: register ``fn(probe, settings, *, generator)`` as signal ``name``."""

    def register(fn: SignalFn) -> SignalFn:
        """Add ``fn`` to the registry under ``name`` and return it unchanged."""
        register_signal(Signal(name, fn, settings))
        return fn

    return register


def register_signal(spec: Signal) -> Signal:
    """Add ``spec`` to the registry (replacing a signal of the same name).

    Raises:
        ConfigError: if ``spec.kind`` is not ``checkpoint`` or ``trajectory``.
    """
    require_choice("kind", spec.kind, ("checkpoint", "trajectory"))
    _REGISTRY[spec.name] = spec
    return spec


def names() -> list[str]:
    """Registered signal names, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> Signal:
    """The signal ``name``.

    Raises:
        ConfigError: for an unknown name; the message lists the available signals.
    """
    require_choice("signal", name, names())
    return _REGISTRY[name]


def settings_hash(name: str, settings: Any) -> str:
    """A short stable hash of (signal name, settings) used to skip repeated measurements."""
    blob = json.dumps({"signal": name, **dataclasses.asdict(settings)}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator a signal gets at ``step``: a function of (seed, step) only, so results
    do not depend on the order or the process in which checkpoints are measured."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def flat_grad(loss: Tensor, params: list[nn.Parameter], **kwargs: Any) -> list[Tensor]:
    """``∂loss/∂params`` (a zero tensor for a parameter the loss does not touch)."""
    grads = torch.autograd.grad(loss, params, allow_unused=True, **kwargs)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def dot(xs: list[Tensor], ys: list[Tensor]) -> Tensor:
    """Inner product of two parameter-shaped tensor lists, in float64."""
    return sum((x.double() * y.double()).sum() for x, y in zip(xs, ys))
