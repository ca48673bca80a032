"""Logging out: phasewatch's numbers and warnings in the user's own tracker.

::

    Watcher(model, out="runs/x", log_to=("tensorboard",))   # writes runs/x/tensorboard/
    Watcher(model, out="runs/x", loggers=[writer])           # your SummaryWriter, wandb run,
                                                             # mlflow run, or a Logger
    phasewatch run grokking --log-to tensorboard,wandb       # the run's metrics, live

A :class:`Logger` takes scalars (``log_scalars(step, {key: value})``, slash keys as
stored) and text (``log_text(step, tag, text)``: early warnings, a run's summary). Three
implementations, each importing its package only when made (optional extras):

- ``tensorboard``: ``torch.utils.tensorboard.SummaryWriter``; ``add_scalar`` per key and
  ``add_text``. Made by name it writes ``<run dir>/tensorboard``.
- ``wandb``: a W&B run; every key is plotted against ``phasewatch/step``
  (``define_metric``), so values that arrive late (background signals) still land at
  their step; text becomes an alert (``run.alert``) and the run summary's ``tag``. Made by
  name: ``wandb.init(project=$WANDB_PROJECT or "phasewatch", name=<run dir name>)``,
  which honours ``WANDB_MODE``/``WANDB_DIR``.
- ``mlflow``: an MLflow run through ``MlflowClient`` (the tracking URI of
  ``mlflow.get_tracking_uri()``, e.g. ``$MLFLOW_TRACKING_URI``); ``log_batch`` metrics
  and text appended to the artifact ``<tag>.txt`` (also the tag ``tag``: the latest).
  Made by name: a run named after the run dir in experiment ``$MLFLOW_EXPERIMENT_NAME``
  or ``phasewatch``.

A logger made by name is closed (``close``, ``finish``, terminated) by phasewatch; an
object you pass stays yours: it is flushed, never closed. A logger that raises is
reported once and dropped (:class:`Fanout`): logging never stops training.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from phasewatch.errors import ConfigError, MissingDependency
from phasewatch.store.run import RunDir

log = logging.getLogger("phasewatch.watch")

LOGGERS = ("tensorboard", "wandb", "mlflow")
_MODULE = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
WARNINGS = "phasewatch/warnings"  # the text tag of early warnings
STEP = "phasewatch/step"  # W&B's x-axis of phasewatch's keys


@runtime_checkable
class Logger(Protocol):
    """Where phasewatch writes scalars and text (see module docstring)."""

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Write ``values`` (slash keys, finite floats) at training ``step``."""

    def log_text(self, step: int, tag: str, text: str) -> None:
        """Write ``text`` under ``tag`` at training ``step``."""

    def close(self) -> None:
        """Flush; close what phasewatch opened."""


def names(value: str | Iterable[str] | None, field: str = "log_to") -> tuple[str, ...]:
    """Logger names from ``"a,b"`` or ``["a", "b,c"]`` (the ``--log-to`` forms), deduplicated;
    ``field`` names the argument in errors.

    Raises:
        ConfigError: on a name not in :data:`LOGGERS` (the message lists them).
    """
    items = [value] if isinstance(value, str) else list(value or ())
    if not all(isinstance(v, str) for v in items):
        raise ConfigError(f"{field}={value!r}; allowed: names among {', '.join(LOGGERS)}")
    out: list[str] = []
    for part in (p.strip().lower() for v in items for p in v.split(",")):
        if part not in LOGGERS:
            raise ConfigError(f"{field}: unknown logger {part!r}; allowed: {', '.join(LOGGERS)}")
        if part not in out:
            out.append(part)
    return tuple(out)


def require_installed(chosen: Iterable[str]) -> None:
    """Raise :class:`~phasewatch.errors.MissingDependency` with the ``pip install`` command
    for the first of ``chosen`` whose package is not installed."""
    for name in chosen:
        if importlib.util.find_spec(_MODULE[name]) is None:
            raise MissingDependency(
                f"logger {name!r} needs the {_MODULE[name]} package; "
                f"install it with: pip install 'phasewatch[{name}]'"
            )


class TensorBoardLogger:
    """Scalars and text into a ``torch.utils.tensorboard.SummaryWriter``.

    Args:
        writer: your writer (flushed, not closed); None: a new one writing ``log_dir``.
        log_dir: the event files' directory of a new writer.
    """

    def __init__(self, writer: Any = None, *, log_dir: str | Path | None = None) -> None:
        self.owned = writer is None
        if writer is None:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=None if log_dir is None else str(log_dir))
        self.writer = writer

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        """``add_scalar(key, value, step)`` for each key."""
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def log_text(self, step: int, tag: str, text: str) -> None:
        """``add_text(tag, text, step)``."""
        self.writer.add_text(tag, text, step)

    def close(self) -> None:
        """Flush; close a writer made here."""
        self.writer.flush()
        if self.owned:
            self.writer.close()


class WandbLogger:
    """Scalars and alerts into a W&B run (module docstring).

    Args:
        run: your ``wandb`` run (left open); None: ``wandb.init`` one named ``name``.
        name: the new run's name.
        config: the new run's config (e.g. the run's config.json).
    """

    def __init__(
        self, run: Any = None, *, name: str | None = None, config: Mapping | None = None
    ) -> None:
        import wandb

        self.owned = run is None
        if run is None:
            project = os.environ.get("WANDB_PROJECT", "phasewatch")
            where = os.environ.get("WANDB_DIR")  # re-read: wandb keeps its first settings
            run = wandb.init(project=project, name=name, config=dict(config or {}), dir=where)
        self.run, self.level = run, wandb.AlertLevel.WARN
        self.run.define_metric(STEP, hidden=True)
        self.defined: set[str] = set()

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        """One ``run.log`` row with ``phasewatch/step``; new keys plotted against it."""
        for key in set(values) - self.defined:
            self.run.define_metric(key, step_metric=STEP)
            self.defined.add(key)
        self.run.log({STEP: step, **values})

    def log_text(self, step: int, tag: str, text: str) -> None:
        """An alert titled ``tag (step N)`` and the summary entry ``tag``."""
        self.run.alert(title=f"{tag} (step {step})", text=text, level=self.level)
        self.run.summary[tag] = text

    def close(self) -> None:
        """Finish a run made here."""
        if self.owned:
            self.run.finish()


class MlflowLogger:
    """Metrics and text artifacts into an MLflow run (module docstring).

    Args:
        run: your MLflow run (anything with ``info.run_id``; left running); None: a new
            run named ``name``.
        name: the new run's name.
    """

    def __init__(self, run: Any = None, *, name: str | None = None) -> None:
        from mlflow.tracking import MlflowClient

        self.client, self.owned = MlflowClient(), run is None
        if run is None:
            experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", "phasewatch")
            found = self.client.get_experiment_by_name(experiment)
            exp_id = found.experiment_id if found else self.client.create_experiment(experiment)
            run = self.client.create_run(exp_id, run_name=name)
        self.run_id: str = run.info.run_id
        self.texts: dict[str, list[str]] = {}

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        """One ``log_batch`` of the values at ``step``."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def log_text(self, step: int, tag: str, text: str) -> None:
        """Append ``[step N] text`` to the artifact ``<tag>.txt``; set the tag ``tag``."""
        lines = self.texts.setdefault(tag, [])
        lines.append(f"[step {step}] {text}")
        self.client.log_text(self.run_id, "\n".join(lines) + "\n", f"{tag}.txt")
        self.client.set_tag(self.run_id, tag, text[:5000])

    def close(self) -> None:
        """Mark a run made here finished."""
        if self.owned:
            self.client.set_terminated(self.run_id)


def open_logger(name: str, run_dir: Path, config: Mapping | None = None) -> Logger:
    """The logger ``name`` made for the run directory ``run_dir`` (module docstring).

    Raises:
        ConfigError: on an unknown name.
        MissingDependency: if its package is not installed (with the pip command).
    """
    (name,) = names(name)
    require_installed([name])
    if name == "tensorboard":
        return TensorBoardLogger(log_dir=Path(run_dir) / "tensorboard")
    if name == "wandb":
        return WandbLogger(name=Path(run_dir).name, config=config)
    return MlflowLogger(name=Path(run_dir).name)


def wrap(obj: Any) -> Logger:
    """A :class:`Logger` as it is; your SummaryWriter, W&B run or MLflow run wrapped (and
    left open at the end).

    Raises:
        ConfigError: on anything else (the message says what is allowed).
    """
    if isinstance(obj, Logger):
        return obj
    if hasattr(obj, "add_scalar") and hasattr(obj, "add_text"):
        return TensorBoardLogger(obj)
    if hasattr(obj, "define_metric") and hasattr(obj, "alert"):
        return WandbLogger(obj)
    if isinstance(getattr(getattr(obj, "info", None), "run_id", None), str):
        return MlflowLogger(obj)
    raise ConfigError(
        f"loggers: {type(obj).__name__} is not a logger; allowed: a SummaryWriter, a wandb "
        "run, an mlflow run, or an object with log_scalars, log_text and close"
    )


class Fanout:
    """Several loggers as one that never raises: a logger that fails is reported through
    ``problem(kind, message, key)`` (default: a logged warning) and dropped.

    Args:
        loggers: the loggers.
        problem: how failures are reported (the Watcher's problem list).
    """

    def __init__(
        self, loggers: Sequence[Logger], problem: Callable[[str, str, str], Any] | None = None
    ) -> None:
        self.loggers = list(loggers)
        self.problem = problem or (
            lambda kind, message, key="": log.warning("phasewatch: %s", message)
        )

    def __bool__(self) -> bool:
        return bool(self.loggers)

    def _each(self, method: str, *args: Any) -> None:
        """Call ``method(*args)`` on every logger; drop the ones that raise."""
        for lg in list(self.loggers):
            try:
                getattr(lg, method)(*args)
            except Exception as e:
                self.loggers.remove(lg)
                name = type(lg).__name__
                self.problem("logger", f"logger {name} dropped: {method} raised {e!r}", name)

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Every logger's ``log_scalars`` (nothing when ``values`` is empty)."""
        if values:
            self._each("log_scalars", step, dict(values))

    def log_text(self, step: int, tag: str, text: str) -> None:
        """Every logger's ``log_text``."""
        self._each("log_text", step, tag, text)

    def close(self) -> None:
        """Every logger's ``close``; the list is emptied."""
        self._each("close")
        self.loggers = []


def watcher_loggers(
    chosen: Sequence[str], objects: Iterable[Any], run_dir: Path, problem: Callable
) -> Fanout:
    """The Watcher's loggers: those named in ``log_to`` (made for ``run_dir``) and the
    ``loggers=`` objects (:func:`wrap`)."""
    made = [open_logger(n, run_dir) for n in chosen]
    return Fanout(made + [wrap(o) for o in objects or ()], problem)


class RunLoggers:
    """The ``on_metrics`` hook of ``phasewatch run --log-to``: loggers made at the first
    call for the run directory being trained, then fed its metrics at each eval step.

    Args:
        chosen: logger names (:func:`names`); their packages are checked at once, so a
            missing one fails before anything is written.
    """

    def __init__(self, chosen: Sequence[str]) -> None:
        require_installed(chosen)
        self.chosen, self.out = tuple(chosen), Fanout([])

    def __call__(self, run: RunDir, step: int, values: Mapping[str, float]) -> None:
        """Log ``values`` at ``step`` (opening the loggers for ``run`` first)."""
        if self.chosen:  # the first call
            made = []
            for name in self.chosen:
                try:
                    made.append(open_logger(name, run.path, run.config()))
                except Exception as e:  # e.g. W&B unreachable: train on without it
                    log.warning("phasewatch: logger %s not opened: %r", name, e)
            self.out, self.chosen = Fanout(made), ()
        self.out.log_scalars(step, values)

    def log_text(self, step: int, tag: str, text: str) -> None:
        """Log ``text`` (e.g. the run's summary) to the loggers opened so far."""
        self.out.log_text(step, tag, text)

    def close(self) -> None:
        """Close the loggers."""
        self.out.close()


__all__ = [
    "LOGGERS",
    "WARNINGS",
    "Fanout",
    "Logger",
    "MlflowLogger",
    "RunLoggers",
    "TensorBoardLogger",
    "WandbLogger",
    "names",
    "open_logger",
    "require_installed",
    "watcher_loggers",
    "wrap",
]
