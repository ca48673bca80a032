"""``Watcher``: phasewatch's signals and causal early warnings inside any PyTorch loop.

::

    from phasewatch import Watcher
    watch = Watcher(model, out="runs/my-run", steps=10_000, every=100,
                    probe_batch=(x, y), loss_fn=cross_entropy, on_warning=print)
    for step in range(10_000):
        ...; opt.step()
        watch.step(step, metrics={"train/loss": loss.item(), "val/acc": acc})
    watch.close()      # `phasewatch report runs/my-run` works on it

The settings are a :class:`~phasewatch.watch.config.WatchConfig` (or its fields as keyword
arguments); the objects (model, probe batch, loss, callback, ``loggers``) plain arguments.
Signals and warnings also go to your tracker (``log_to=``, :mod:`phasewatch.watch.loggers`).

What it writes is an ordinary run directory (:mod:`phasewatch.store.run`): ``config.json``
(phenomenon ``watch``), ``env.json``, ``status.json``, ``metrics.parquet``, ``signals.parquet``,
optional ``checkpoints/``, ``events.json`` (``watch`` block: signals, problems, overhead,
online warnings; ``detect`` block) and the probe batch ``watch/probe.safetensors``:
``detect`` and ``report`` work on it, ``measure`` too given a ``factory`` (``.probe``).

Signals come from the registry (:mod:`phasewatch.signals`), measured by the runner's
:func:`~phasewatch.signals.runner.measure_probe` on the live model: cheap ones every
``every`` steps; ``llc`` and ``hessian`` every ``expensive_every`` steps, inline or (with
``background=True``) in a thread on a copy of the weights (:mod:`phasewatch.watch.worker`).
Measuring never changes training (:mod:`phasewatch.watch.inline`). Under
``torch.distributed`` rank 0 writes and the others follow (:mod:`phasewatch.watch.ranks`);
an FSDP model's weights are gathered into a ``replica`` on rank 0 (:mod:`.sharded`).

Early warnings are :mod:`phasewatch.detect.online`: the code path of ``phasewatch detect``
fed point by point (thresholds from AR(1) surrogates of each series' burn-in), equal to the
warnings ``detect`` finds on the run afterwards; they need the planned ``steps=``.

``step()`` never raises: bad input is logged and skipped (:mod:`phasewatch.watch.metrics`);
a signal that raises is logged, disabled and reported at ``close()``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from phasewatch.config import require
from phasewatch.detect.online import EarlyWarning, OnlineDetector
from phasewatch.signals import runner
from phasewatch.signals.base import settings_hash
from phasewatch.store.env import describe
from phasewatch.store.run import create_run_at, tidy
from phasewatch.store.signals import SignalStore
from phasewatch.training.updates import ModelUpdates
from phasewatch.watch.close import finish_config, watch_block, write_detect_block, write_watch_block
from phasewatch.watch.config import (
    EXPENSIVE,
    WatchConfig,
    build_config,
    check_model,
    check_out,
    choose_signals,
    run_config,
)
from phasewatch.watch.forecast import forecast_watch
from phasewatch.watch.inline import Inline
from phasewatch.watch.loggers import WARNINGS, watcher_loggers
from phasewatch.watch.metrics import MetricLog, Problems
from phasewatch.watch.overhead import Overhead
from phasewatch.watch.probe import LossFn, save_probe
from phasewatch.watch.ranks import Relay, Sync, is_sharded, ranks, unwrap
from phasewatch.watch.sharded import Replica, measured
from phasewatch.watch.worker import Background, state_dict

log = logging.getLogger("phasewatch.watch")

_ARGUMENTS = ("model", "config", "probe_batch", "loss_fn", "on_warning", "loggers", "replica")


class Watcher:
    """Record signals and raise causal early warnings inside a user's training loop.

    Args:
        model: the model being trained (a ``torch.nn.Module`` with trainable parameters).
        config: the settings (:class:`~phasewatch.watch.config.WatchConfig`); None: built
            from ``kwargs``. A dict is taken as ``hparams`` (what ``config=`` meant before
            WatchConfig).
        probe_batch: a fixed batch the signals are measured on (needed by every signal but
            ``geometry``): a tensor ``(n, ...)``, or a tuple/list or dict of tensors with
            the same leading dimension n, on the model's device.
        loss_fn: ``loss_fn(model, batch) -> Tensor`` per-sample losses ``(n,)`` or their
            mean ``()``, in nats (see :mod:`phasewatch.watch.probe`; per-sample losses
            enable ``grad/noise_scale``).
        on_warning: called with each :class:`~phasewatch.detect.online.EarlyWarning`
            (e.g. ``print``); default: log it. Exceptions it raises are logged.
        loggers: your SummaryWriter, wandb/mlflow runs or Loggers, fed like ``log_to``'s.
        replica: for an FSDP-sharded model only: a model of the same architecture without
            FSDP, or a function building one (called on rank 0 only); rank 0 loads the
            gathered full weights into it and measures it (:mod:`phasewatch.watch.sharded`).
            Needed when signals or checkpoints read the weights; ignored otherwise.
        **kwargs: any :class:`~phasewatch.watch.config.WatchConfig` field (``out``,
            ``steps``, ``every``, ``signals``, ``log_to``, ...); they override ``config``'s.

    Attributes:
        config: the validated :class:`~phasewatch.watch.config.WatchConfig`.
        model: the watched model.
        rd: the run directory being written (:class:`~phasewatch.store.RunDir`).
        resolved: each measured signal's settings object, ``{name: settings}``.
        detector: the online early-warning detector (None without ``steps``).
        disabled: ``{signal: reason}`` of signals disabled after an error.
        problems: problems found so far (bad metrics, failing callbacks or loggers, ...),
            each logged once (:class:`~phasewatch.watch.metrics.Problems`).
        out: the trackers signals and warnings go to (:class:`~.loggers.Fanout`).
        metrics: the metrics kept so far (:class:`~phasewatch.watch.metrics.MetricLog`).
        last_step: the last training step seen (None before the first).
        background: whether the expensive signals run in the background thread.
        sharded: whether the model is FSDP-sharded.
        gather: the FSDP weights' gathering into rank 0's replica
            (:class:`~phasewatch.watch.sharded.Gather`); None for an unsharded model or
            when nothing reads the weights (no signals, no checkpoints).

    Raises:
        ConfigError: (a ``ValueError``) on an invalid argument, naming it and what is
            allowed: an unknown keyword (the message lists the allowed ones), an invalid
            WatchConfig field, no trainable parameters, a non-empty ``out``, a missing or
            failing ``probe_batch``/``loss_fn`` (:func:`~.config.choose_signals`), an object
            in ``loggers`` that is not one, an FSDP-sharded model with signals or
            checkpoints and no ``replica`` or one that does not take its weights (under
            FSDP, rank 0's ``replica`` and ``loss_fn`` errors are raised on every rank).
        MissingDependency: if a ``log_to`` tracker's package is not installed.
    """

    def __init__(
        self,
        model: nn.Module,
        config: WatchConfig | dict[str, Any] | None = None,
        *,
        probe_batch: Any = None,
        loss_fn: LossFn | None = None,
        on_warning: Callable[[EarlyWarning], Any] | None = None,
        loggers: Sequence[Any] = (),
        replica: Replica | None = None,
        **kwargs: Any,
    ) -> None:
        t0 = time.perf_counter()
        self.config = cfg = build_config(config, kwargs, others=_ARGUMENTS)
        check_model(model)
        require(on_warning is None or callable(on_warning), "on_warning", "a callable", on_warning)
        self.resolved, left_out = choose_signals(cfg, probe_batch, loss_fn)
        self._init_state()
        self.relay = Relay(self.ranks, on_warning, self._problem)
        model = unwrap(model)  # DDP: measure the module (ranks.py)
        self.sharded = is_sharded(model)
        self.model, self.task, self.gather = measured(
            model, replica, self.ranks, cfg, list(self.resolved), probe_batch, loss_fn
        )
        self.rd = self.detector = self.worker = self.forecast = None
        self.background = False
        if self.ranks.writer:  # other ranks only follow rank 0 (ranks.py)
            self._open(probe_batch, loss_fn, loggers, left_out)
        self.clock.once["setup"] = time.perf_counter() - t0

    def _open(self, probe_batch: Any, loss_fn: LossFn | None, loggers: Any, left_out: list) -> None:
        """Rank 0's set-up: trackers, detector, the run directory and its probe batch."""
        cfg, model = self.config, self.model
        check_out(cfg.out)
        self.inline = Inline(model, self.task, logs=lambda: (self.metrics.rows, self.rd))
        self.updates = None if self.sharded else ModelUpdates(model, cfg.every)
        if self.updates is None:  # sharded.py: W + 1 gathers per `every` steps
            self._problem("updates", "updates/gram_* not computed under FSDP")
        self.detector = (
            OnlineDetector(cfg.steps, cfg.detect, on_warning=self.relay.warned)
            if cfg.steps
            else None
        )
        self.out = watcher_loggers(cfg.log_to, loggers, cfg.out, self._problem)
        self.relay.text = lambda w: self.out.log_text(w.step, WARNINGS, str(w))
        self.forecast = forecast_watch(cfg.forecaster, cfg.steps, self.out)
        self.online = [a for a in (self.detector, self.forecast) if a is not None]
        expensive = bool(set(self.resolved) & EXPENSIVE)
        self.background = cfg.background and self.task is not None and expensive
        probe_n = self.task.probe_size if self.task else None
        stored = run_config(cfg, self.resolved, model, probe_n=probe_n, background=self.background)
        self.rd = create_run_at(cfg.out, stored, describe("cpu"))
        hashes = {n: settings_hash(n, st) for n, st in self.resolved.items()}
        self.store = SignalStore(self.rd, self.resolved, hashes)
        self.worker = Background(model, probe_batch, loss_fn) if self.background else None
        if probe_batch is not None:
            try:
                save_probe(self.rd, probe_batch)
            except Exception as e:
                self._problem("probe", f"probe batch not stored ({e}): `measure` cannot run")
        if cfg.steps is None:
            self._problem("steps", "steps= not given: no early warnings (windows need it)")
        if left_out:
            self._problem("signals", f"no probe_batch/loss_fn: signals {left_out} left out")

    def _init_state(self) -> None:
        """The bookkeeping of a new Watcher: ranks, problems, metrics, timers."""
        self.ranks = ranks()
        self.sync = Sync(self.ranks, self.config.every)
        self._block: dict[str, Any] = {}  # what close() returned
        self.disabled: dict[str, str] = {}
        self.problems = Problems()
        self._problem = self.problems.add
        self.metrics = MetricLog(self.problems)
        self.clock = Overhead()
        self.closed = False
        self._unstored: list[runner.StepResult] = []
        self.online: list[Any] = []  # the early-warning detector and the forecaster

    # ---- the loop ----------------------------------------------------------------------
    def step(self, step: int, metrics: dict[str, Any] | None = None) -> None:
        """Record ``metrics`` at training step ``step``; measure signals on their cadence.

        Never raises: bad input is logged (once per kind) and skipped.

        Args:
            step: the training step (update count), an integer >= 0 that never decreases;
                calling again with the current step adds metrics to it (signals are
                measured on the first call of a step only).
            metrics: flat slash-keyed numbers (floats, ints, 0-d tensors) for this step.
        """
        t0 = self.clock.enter()
        due = not self.closed and self.sync.due(step)  # the same on every rank
        try:
            if self.gather is not None and not self.closed and self.gather.due(step):
                self.clock.timing("gather", self.gather.refresh)  # every rank: a collective
            if not self.closed and self.ranks.writer:
                self._step(step, metrics or {})
        except Exception as e:  # never crash the user's training
            self._problem("internal", f"step({step!r}) failed: {type(e).__name__}: {e}", repr(e))
        finally:
            if due:
                self.relay.exchange(self.relay.pending)
            self.clock.leave(t0)

    def _step(self, step: Any, metrics: dict[str, Any]) -> None:
        """Keep the metrics; on a new step, run what is due (:meth:`_on_cadence`)."""
        kept = self.metrics.add(step, metrics)
        if kept is None:
            return
        values, new = kept
        gram = self.updates.step(step) if new and self.updates is not None else {}
        if gram:  # between calls, at measured steps
            values = values | self.metrics.add(step, gram)[0]
        for a in self.online:
            a.add(step, values)
        if new:
            self._on_cadence(step)

    def _on_cadence(self, step: int) -> None:
        """Measure, checkpoint, update the detector and flush, each on its cadence."""
        cfg = self.config
        expensive = [n for n in self.resolved if n in EXPENSIVE and n not in self.disabled]
        cheap = [n for n in self.resolved if n not in EXPENSIVE and n not in self.disabled]
        if cheap and step % cfg.every == 0:
            self.clock.timing("signals", self._measure, step, cheap)
        if expensive and step % cfg.expensive_cadence == 0:
            if self.worker is not None:
                self.clock.timing("io", self._submit, step, expensive)
            else:
                self.clock.timing("signals", self._measure, step, expensive)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            self.clock.timing("io", self._checkpoint, step)
        if step % cfg.every == 0:
            self.clock.timing("io", self._collect_background)
            for a in self.online:
                self.clock.timing("detect", a.update)
            if step % (10 * cfg.every) == 0:
                self.clock.timing("io", self._flush, "running")

    def _jobs(self, names: list[str]) -> list[tuple[str, dict[str, Any]]]:
        """The runner's jobs: (signal name, settings fields) for each of ``names``."""
        return [(n, dataclasses.asdict(self.resolved[n])) for n in names]

    def _measure(self, step: int, names: list[str]) -> None:
        """Measure ``names`` inline on the live model (:mod:`phasewatch.watch.inline`)."""
        self._merge(*self.inline.measure(step, self._jobs(names)))

    def _merge(self, res: runner.StepResult, errors: dict[str, str]) -> None:
        """Disable signals that raised; hand the rows on (signals.parquet, detector, loggers)."""
        for name, err in errors.items():
            if name not in self.disabled:
                self.disabled[name] = f"step {res.step}: {err}"
                log.warning("phasewatch Watcher: signal %s disabled: %s", name, self.disabled[name])
        if not res.rows and not res.warnings:  # not-applicable warnings are stored too
            return
        self._unstored.append(res)  # written to signals.parquet at the next flush
        self.out.log_scalars(res.step, {r[1]: r[2] for r in res.rows})
        for a in self.online:
            a.add(res.step, {r[1]: r[2] for r in res.rows})

    def _checkpoint(self, step: int) -> None:
        """Save the model's weights at ``step`` (once)."""
        if step not in self.rd.checkpoint_steps():
            self.rd.save_checkpoint(step, state_dict(self.model))

    def _submit(self, step: int, names: list[str]) -> None:
        """Queue ``names`` for the background thread; on failure measure inline from now on."""
        try:
            self.worker.submit(step, self._jobs(names))  # llc and hessian need no previous weights
        except Exception as e:  # the model cannot be copied: measure inline from now on
            self._problem("background", f"background signals off, measured inline: {e!r}")
            self._collect_background(final=True)
            self.worker, self.background = None, False
            self._measure(step, names)

    def _collect_background(self, final: bool = False) -> None:
        """Merge the background thread's results so far (``final``: wait for all)."""
        if self.worker is None:
            return
        results, missing = self.worker.finish() if final else (self.worker.poll(), [])
        if missing:
            self._problem("background", f"background thread died before steps {missing}")
        for d in results:
            self.clock.once["background"] += d.seconds
            self.clock.once["background_cpu"] += d.cpu_seconds
            self._merge(d.result, d.errors)

    def _flush(self, status: str) -> None:
        """Write the signals and metrics so far and the status."""
        self.store.add_many(self._unstored)
        self._unstored = []
        self.rd.write_metrics(tidy(self.metrics.rows))
        self.rd.set_status(status, self.last_step or 0)

    @property
    def last_step(self) -> int | None:
        """The last training step seen (None before the first)."""
        return self.metrics.last_step

    def overhead(self) -> dict[str, float]:
        """Seconds the Watcher took by kind, and as % of the training loop's own time
        (:meth:`phasewatch.watch.overhead.Overhead.report`)."""
        return self.clock.report()

    def close(self) -> dict[str, Any]:
        """Finish: wait for background signals, write every file of the run directory, log
        a summary (overhead, disabled signals, warnings). Idempotent; never raises.

        Returns:
            The ``watch`` block written to events.json (rank 0's, on every rank).
        """
        if self.closed:
            return self._block
        self.closed = True
        t0 = self.clock.enter()
        try:
            if self.ranks.writer:
                self._collect_background(final=True)
                for a in self.online:
                    a.update()
                self._block = self._write_final(t0)
        except Exception as e:
            log.exception("phasewatch Watcher: close() failed")
            with contextlib.suppress(Exception):
                self.rd.set_status("failed", self.last_step or 0, f"{type(e).__name__}: {e}")
        if self.ranks.shared:
            self._block = self.relay.exchange((self.relay.pending, self._block))[1]
        return self._block

    def _write_final(self, t0: float) -> dict[str, Any]:
        """Write the run directory's final files (:mod:`phasewatch.watch.close`); return
        the watch block. ``t0``: when ``close()`` started (``time.perf_counter``)."""
        self._flush("running")
        finish_config(self.rd, self.last_step, self.background)
        if self.detector is not None:
            for message in write_detect_block(self.rd, self.config, self.detector):
                self._problem("target", message)
        self.clock.once["close"] = time.perf_counter() - t0
        warnings = self.detector.warnings if self.detector is not None else []
        block = watch_block(self.config, self.resolved, background=self.background,
                            disabled=self.disabled, problems=self.problems.messages,
                            overhead=self.overhead(), warnings=warnings, last_step=self.last_step,
                            checkpoints=self.rd.checkpoint_steps())  # fmt: skip
        block["forecast"] = self.forecast.block() if self.forecast is not None else None
        write_watch_block(self.rd, block)
        self.out.close()
        return block

    def __enter__(self) -> Watcher:
        """``with Watcher(...) as watch:`` closes the Watcher at the end of the block."""
        return self

    def __exit__(self, *exc: Any) -> None:
        """Close the Watcher (even after an exception in the block, which propagates)."""
        self.close()


__all__ = ["Watcher"]
