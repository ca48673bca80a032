"""``WatchConfig``: every setting of a :class:`~phasewatch.watch.Watcher` that is not an
object (the model, probe batch, loss function and warning callback stay plain arguments).

::

    from phasewatch.watch import Watcher, WatchConfig
    cfg = WatchConfig(out="runs/my-run", steps=10_000, every=100, signals=("geometry",))
    watch = Watcher(model, cfg, probe_batch=(x, y), loss_fn=cross_entropy)

A frozen dataclass validated in ``__post_init__``: a bad value raises
:class:`~phasewatch.errors.ConfigError` (a ``ValueError``) naming the field and the allowed
values. :func:`build_config` turns the Watcher's keyword arguments into one (the way
``Watcher(model, out=..., every=...)`` works).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from phasewatch.config import require
from phasewatch.detect.run import DetectConfig
from phasewatch.detect.transitions import Target
from phasewatch.errors import ConfigError
from phasewatch.signals import runner
from phasewatch.watch import loggers
from phasewatch.watch.probe import WATCHED, check_factory
from phasewatch.watch.ranks import ranks

DEFAULT_SIGNALS = ("geometry", "gradients")
EXPENSIVE = frozenset({"llc", "hessian"})  # measured every ``expensive_every`` steps
NEEDS_LOSS = frozenset({"gradients", "llc", "hessian", "samples"})  # need probe_batch, loss_fn


def _positive(value: Any, optional: bool = False) -> bool:
    """``value`` is an int >= 1 (not a bool), or None when ``optional``."""
    if value is None:
        return optional
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _json_dict(value: Any) -> bool:
    """``value`` is None or a dict with str keys that ``json.dumps`` can write."""
    if value is None:
        return True
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        return False
    try:
        json.dumps(dict(value))
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class WatchConfig:
    """What a :class:`~phasewatch.watch.Watcher` records, how often, and where.

    Attributes:
        out: the run directory to create (a ``str`` is stored as a ``Path``); the Watcher
            requires it to be new or empty.
        steps: planned number of training steps; needed for early warnings (their windows
            are fractions of it). None: signals and metrics only.
        signals: registered signal names (``geometry``, ``gradients``, ``llc``,
            ``hessian``, ``samples``, trajectory signals such as ``loss_spectrum``),
            stored as a tuple; :data:`NEEDS_LOSS` need a probe batch and a loss function.
            None (the default): :data:`DEFAULT_SIGNALS`, less those that need a probe
            batch when the Watcher is given none (:func:`choose_signals`).
            A trajectory signal is measured every ``every`` steps on what the Watcher has
            logged so far (:mod:`phasewatch.watch.inline`); its ``needs`` are measured too.
        every: cadence of the cheap signals and of the early-warning update, in steps.
        expensive_every: cadence of ``llc`` and ``hessian``, in steps; None: 10·every
            (:attr:`expensive_cadence`).
        background: measure the expensive signals in a background thread on copies of
            the weights instead of inline; ``close()`` waits for them.
        checkpoint_every: also save ``checkpoints/step_XXXXXX.safetensors`` this often, in
            steps; None: no checkpoints.
        settings: per-signal settings overrides, e.g. ``{"llc": {"draws": 50}}`` (each
            signal seeds its own generators from its ``seed`` setting and the step).
        target: the behaviour whose onset the warnings anticipate (``Target("val/acc",
            0.99)``); only labels the report (onset, lead times).
        detect: early-warning settings (None: those of ``phasewatch detect``).
        seed: the training run's seed, recorded as ``train.seed`` in config.json.
        hparams: your own hyperparameters (JSON values, str keys), stored in config.json
            under ``task.user``.
        factory: ``"package.module:function"``, a function returning ``(model, loss_fn)``
            like yours, so ``phasewatch measure`` can rebuild them and load the checkpoints
            into the model; recorded in config.json. None: ``measure`` cannot run on the
            run (``detect`` and ``report`` can).
        factory_kwargs: JSON-serialisable keyword arguments for ``factory``.
        change_points: also compute every series' change points (and the target's
            ``change_point`` onset) at ``close()``; False: left to ``phasewatch detect``,
            which saves ``close()`` about a second of imports (ruptures, scipy.stats).
        log_to: trackers to write the signals (scalars) and early warnings (text) into,
            made for the run: ``tensorboard`` (``<out>/tensorboard``), ``wandb``, ``mlflow``
            (:mod:`phasewatch.watch.loggers`); a tuple, or a comma-separated str.
        forecaster: a folder written by ``phasewatch forecast fit`` (``forecaster.json``):
            the run-level forecast is made once, at its decision step, from what was
            logged so far (:mod:`phasewatch.detect.forecast.online`), logged as a warning
            and stored in events.json ``watch.forecast``; needs ``steps``.

    Raises:
        ConfigError: on an invalid field, naming it and what is allowed (an integer field
            < 1, an unknown signal, settings for a signal not measured, a ``factory`` that
            is not an importable function, non-JSON ``hparams``/``factory_kwargs``, an
            unknown ``log_to`` name, ...).
        MissingDependency: if a ``log_to`` tracker's package is not installed (the
            message gives the ``pip install`` command).
    """

    out: str | Path
    steps: int | None = None
    signals: Sequence[str] | None = None
    every: int = 100
    expensive_every: int | None = None
    background: bool = False
    checkpoint_every: int | None = None
    settings: Mapping[str, Mapping[str, Any]] | None = None
    target: Target | None = None
    detect: DetectConfig = field(default_factory=DetectConfig)
    seed: int = 0
    hparams: Mapping[str, Any] | None = None
    factory: str | None = None
    factory_kwargs: Mapping[str, Any] | None = None
    change_points: bool = False
    log_to: Sequence[str] | str = ()
    forecaster: str | Path | None = None

    def __post_init__(self) -> None:
        ok = isinstance(self.out, (str, Path)) and str(self.out) != ""
        require(ok, "out", "a path (str or pathlib.Path) of a new or empty directory", self.out)
        self._set("out", Path(self.out))
        ok = _positive(self.steps, optional=True)
        require(ok, "steps", "None or an integer >= 1", self.steps)
        if self.signals is not None:
            ok = not isinstance(self.signals, str) and isinstance(self.signals, Sequence)
            ok = ok and all(isinstance(n, str) and n for n in self.signals)
            require(ok, "signals", "a list or tuple of signal names (str), or None", self.signals)
            self._set("signals", tuple(self.signals))
        require(_positive(self.every), "every", "an integer >= 1", self.every)
        ok = _positive(self.expensive_every, optional=True)
        require(ok, "expensive_every", "None or an integer >= 1", self.expensive_every)
        require(isinstance(self.background, bool), "background", "True or False", self.background)
        ok = _positive(self.checkpoint_every, optional=True)
        require(ok, "checkpoint_every", "None or an integer >= 1", self.checkpoint_every)
        ok = self.settings is None or isinstance(self.settings, Mapping)
        require(ok, "settings", "None or a dict {signal: {field: value}}", self.settings)
        self._set("settings", None if self.settings is None else dict(self.settings))
        self.resolved()  # unknown signals and bad settings raise here
        ok = self.target is None or isinstance(self.target, Target)
        require(ok, "target", "None or a phasewatch.detect.transitions.Target", self.target)
        self._set("detect", DetectConfig() if self.detect is None else self.detect)
        ok = isinstance(self.detect, DetectConfig)
        require(ok, "detect", "None or a phasewatch.detect.run.DetectConfig", self.detect)
        ok = isinstance(self.seed, int) and not isinstance(self.seed, bool)
        require(ok, "seed", "an integer", self.seed)
        require(_json_dict(self.hparams), "hparams", "None or a dict of JSON values", self.hparams)
        self._set("hparams", None if self.hparams is None else dict(self.hparams))
        ok = isinstance(self.factory_kwargs, (Mapping, type(None)))
        kwargs = dict(self.factory_kwargs) if ok and self.factory_kwargs is not None else None
        check_factory(self.factory, kwargs if ok else self.factory_kwargs)
        self._set("factory_kwargs", kwargs)
        ok = isinstance(self.change_points, bool)
        require(ok, "change_points", "True or False", self.change_points)
        self._set("log_to", loggers.names(self.log_to))
        loggers.require_installed(self.log_to)
        ok = self.forecaster is None or (self.steps is not None and str(self.forecaster) != "")
        require(
            ok, "forecaster", "None, or a forecaster folder together with steps=", self.forecaster
        )

    def _set(self, name: str, value: Any) -> None:
        """Normalise a field of the frozen instance (only in ``__post_init__``)."""
        object.__setattr__(self, name, value)

    @property
    def expensive_cadence(self) -> int:
        """Cadence of the expensive signals (``llc``, ``hessian``), in steps."""
        return self.expensive_every or 10 * self.every

    def cadence(self, signal: str) -> int:
        """How often ``signal`` is measured, in steps (:data:`EXPENSIVE` ones less often)."""
        return self.expensive_cadence if signal in EXPENSIVE else self.every

    def resolved(self) -> dict[str, Any]:
        """Each signal's settings object, ``{name: settings}`` (:func:`runner.resolve`).

        Raises:
            ConfigError: on an unknown signal or bad settings (the registry may have
                changed since construction).
        """
        names = DEFAULT_SIGNALS if self.signals is None else self.signals
        return runner.resolve(list(names), self.settings)


FIELDS = tuple(f.name for f in dataclasses.fields(WatchConfig))


def choose_signals(
    config: WatchConfig, probe_batch: Any, loss_fn: Any
) -> tuple[dict[str, Any], list[str]]:
    """The signals a Watcher measures, and the default ones left out for want of a probe.

    With the default ``signals=None`` and neither ``probe_batch`` nor ``loss_fn``, the
    default signals that need them (:data:`NEEDS_LOSS`) are left out, so
    ``Watcher(model, out=...)`` works on the weights alone (``geometry``).

    Returns:
        ``({name: settings}, [names left out])``.

    Raises:
        ConfigError: if signals that need a probe were asked for by name, or only one of
            ``probe_batch`` and ``loss_fn`` is given while some signal needs them.
    """
    resolved = config.resolved()
    needs = sorted(set(resolved) & NEEDS_LOSS)
    if not needs or (probe_batch is not None and loss_fn is not None):
        return resolved, []
    if config.signals is None and probe_batch is None and loss_fn is None:
        return {n: s for n, s in resolved.items() if n not in NEEDS_LOSS}, needs
    raise ConfigError(
        f"probe_batch/loss_fn=None is invalid; allowed: both given (signals {needs} need them)"
    )


def check_model(model: Any) -> None:
    """Check that ``model`` is a ``torch.nn.Module`` with parameters that require grad.

    Raises:
        ConfigError: if it is not.
    """
    require(isinstance(model, nn.Module), "model", "a torch.nn.Module", type(model).__name__)
    ok = any(p.requires_grad for p in model.parameters())
    require(ok, "model", "a model with parameters that require grad", "none")


def check_out(out: Path) -> None:
    """Raise :class:`~phasewatch.errors.ConfigError` unless ``out`` is new or an empty dir."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a phasewatch run" if (out / "config.json").exists() else "files"
        require(False, "out", f"a new or empty directory (it already holds {what})", str(out))


def build_config(
    config: WatchConfig | Mapping[str, Any] | None,
    kwargs: Mapping[str, Any],
    *,
    others: Sequence[str] = (),
) -> WatchConfig:
    """The :class:`WatchConfig` of ``Watcher(model, config, **kwargs)``.

    Args:
        config: a WatchConfig; or None (the config is built from ``kwargs``); or, as before
            WatchConfig existed, a dict of your own hyperparameters (taken as ``hparams``).
        kwargs: WatchConfig fields given as keyword arguments; they override ``config``'s.
        others: the caller's other argument names, listed in the error for unknown ones.

    Returns:
        The validated config.

    Raises:
        ConfigError: on a keyword that is not a field (the message lists the allowed
            ones), on a ``config`` of another type, or on an invalid field value.
    """
    unknown = sorted(set(kwargs) - set(FIELDS))
    if unknown:
        allowed = ", ".join([*FIELDS, *others])
        raise ConfigError(f"unknown argument(s) {', '.join(unknown)}; allowed: {allowed}")
    if isinstance(config, Mapping):  # the user's hyperparameters, as config= meant before
        kwargs = {"hparams": config, **kwargs}
        config = None
    if config is None:
        if "out" not in kwargs:
            raise ConfigError("out is missing; allowed: out=<run directory> or config=WatchConfig")
        return WatchConfig(**kwargs)
    if not isinstance(config, WatchConfig):
        require(False, "config", "a WatchConfig (or None, or a dict of hparams)", config)
    return dataclasses.replace(config, **kwargs) if kwargs else config


def run_config(
    config: WatchConfig,
    resolved: dict[str, Any],
    model: nn.Module,
    *,
    probe_n: int | None,
    background: bool,
) -> dict[str, Any]:
    """The config.json of a watched run (phenomenon ``watch``, preset ``custom``).

    Args:
        config: the Watcher's config.
        resolved: each measured signal's settings object (:meth:`WatchConfig.resolved`).
        model: the watched model (its class name, parameter counts and device are recorded).
        probe_n: the probe batch's size n (None: no probe batch).
        background: whether the expensive signals run in the background thread.

    Returns:
        ``{"phenomenon", "preset", "task", "train"}``; ``task.user`` holds ``hparams``.
    """
    task = {
        "model": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "probe_n": probe_n,
        "signals": {n: dataclasses.asdict(s) for n, s in resolved.items()},
        "factory": config.factory,
        "factory_kwargs": dict(config.factory_kwargs or {}),
        "user": dict(config.hparams or {}),
        # what `phasewatch detect RUN` uses when --target is not given
        "target": dataclasses.asdict(config.target) if config.target is not None else None,
    }
    train = {
        "seed": config.seed,
        "steps": config.steps,
        "eval_every": config.every,
        "expensive_every": config.expensive_cadence,
        "checkpoint_every": config.checkpoint_every,
        "background": background,
        "device": str(next(model.parameters()).device),
        "world_size": ranks().world,  # training processes (torch.distributed)
    }
    return {"phenomenon": WATCHED, "preset": "custom", "task": task, "train": train}


__all__ = [
    "DEFAULT_SIGNALS",
    "EXPENSIVE",
    "FIELDS",
    "NEEDS_LOSS",
    "WatchConfig",
    "build_config",
    "check_model",
    "check_out",
    "choose_signals",
    "run_config",
]
