"""``Watcher``: phasewatch's signals and causal early warnings inside any PyTorch loop.

::

    from phasewatch import Watcher
    watch = Watcher(model, out="runs/my-run", steps=10_000, every=100,
                    probe_batch=(x, y), loss_fn=cross_entropy, on_warning=print)
    for step in range(10_000):
        ...; opt.step()
        watch.step(step, metrics={"train/loss": loss.item(), "val/acc": acc})
    watch.close()      # `phasewatch report runs/my-run` works on it

What it writes is an ordinary run directory (:mod:`phasewatch.store.run`): ``config.json``
(phenomenon ``watch``), ``env.json``, ``status.json``, ``metrics.parquet`` (tidy step, key,
value), ``signals.parquet``/``signals.json`` (the signal runner's writer), optional
``checkpoints/step_XXXXXX.safetensors``, ``events.json`` (a ``watch`` block: signals,
disabled signals, problems, overhead, online warnings; and the ``detect`` block with
``tables/ews.parquet``, ``tables/change_points.parquet``), plus the probe batch
``watch/probe.safetensors``, so ``detect`` and ``report`` work on it unchanged, and
``measure`` too when the Watcher was given a ``factory`` that rebuilds the model and loss
function (:mod:`phasewatch.watch.probe`; nothing executable is stored in the run).

Signals come from the registry (:mod:`phasewatch.signals`) and are measured by the runner's
own :func:`~phasewatch.signals.runner.measure_probe` on the live model: cheap ones
(``geometry``, ``gradients``) every ``every`` steps; expensive ones (``llc``, ``hessian``)
every ``expensive_every`` steps, inline or — with ``background=True`` — in a thread of the
training process on an in-memory copy of the weights (:mod:`phasewatch.watch.worker`).
Measuring never changes training: the model is put in eval mode, torch's RNG state is
forked, and no ``.grad`` is touched.

Early warnings are :mod:`phasewatch.detect.online`: the code path of ``phasewatch detect``
fed point by point, with thresholds from AR(1) surrogates of each series' burn-in; they
equal the warnings ``phasewatch detect`` finds on the run afterwards. They need the planned
number of steps (``steps=``), as ``detect`` needs ``train.steps``.

``step()`` never raises: bad input (a non-finite or non-numeric metric, a step that does
not increase) is logged and skipped; a signal that raises is logged, disabled and reported
at ``close()``. Invalid arguments raise :class:`~phasewatch.errors.ConfigError` (a
``ValueError`` naming the argument and the allowed values) at construction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from phasewatch.config import require
from phasewatch.detect.online import EarlyWarning, OnlineDetector
from phasewatch.detect.run import DetectConfig
from phasewatch.detect.transitions import Target
from phasewatch.signals import runner
from phasewatch.signals.base import settings_hash
from phasewatch.store.env import describe
from phasewatch.store.run import create_run_at, tidy
from phasewatch.store.signals import SignalStore
from phasewatch.watch.close import close_run
from phasewatch.watch.probe import WATCHED, LossFn, WatchedTask, check_factory, save_probe
from phasewatch.watch.worker import Background

log = logging.getLogger("phasewatch.watch")

DEFAULT_SIGNALS = ("geometry", "gradients")
EXPENSIVE = frozenset({"llc", "hessian"})
NEEDS_LOSS = frozenset({"gradients", "llc", "hessian"})


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a phasewatch run" if (out / "config.json").exists() else "files"
        require(False, "out", f"a new or empty directory (it already holds {what})", str(out))


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with tensors that share memory (tied weights) cloned apart,
    as safetensors requires."""
    seen: set[int] = set()
    out = {}
    for k, v in model.state_dict().items():
        ptr = v.untyped_storage().data_ptr()
        out[k] = v.detach().clone() if ptr in seen else v.detach()
        seen.add(ptr)
    return out


class Watcher:
    """Record signals and raise causal early warnings inside a user's training loop.

    Args:
        model: the model being trained (a ``torch.nn.Module`` with trainable parameters).
        out: the run directory to create (must be new or empty).
        steps: planned number of training steps; needed for early warnings (the windows
            are fractions of it). None: signals and metrics only.
        signals: registered signal names (``geometry``, ``gradients``, ``llc``, ``hessian``).
        every: cadence of the cheap signals and of the early-warning update, in steps.
        probe_batch: a fixed batch the signals are measured on (needed by every signal but
            ``geometry``): a tensor, tuple/list or dict of tensors.
        loss_fn: ``loss_fn(model, batch) -> Tensor`` per-sample losses (n,) or their mean,
            in nats (see :mod:`phasewatch.watch.probe`; per-sample losses enable
            ``grad/noise_scale``).
        on_warning: called with each :class:`~phasewatch.detect.online.EarlyWarning`
            (e.g. ``print``); default: log it. Exceptions it raises are logged.
        expensive_every: cadence of ``llc`` and ``hessian``, in steps (default 10·every).
        background: measure the expensive signals in a background thread on copies of
            the weights at their cadence instead of inline; ``close()`` waits for them.
        checkpoint_every: also save ``checkpoints/step_XXXXXX.safetensors`` this often.
        settings: per-signal settings, e.g. ``{"llc": {"draws": 50}}``.
        target: the behaviour whose onset the warnings anticipate (``Target("val/acc",
            0.99)``); only labels the report (onset, lead times).
        detect: early-warning settings (default: those of ``phasewatch detect``).
        seed: seeds the signals' generators (with the step).
        config: your own hyperparameters, stored in ``config.json`` under ``task.user``.
        factory: ``"package.module:function"``, a function returning ``(model, loss_fn)``
            like yours, so ``phasewatch measure`` can rebuild them later and load the
            checkpoints into the model; recorded in config.json. None: ``measure`` cannot
            run on this run (``detect`` and ``report`` can).
        factory_kwargs: JSON-serialisable keyword arguments for ``factory``.

    Raises:
        ConfigError: (a ``ValueError``) on an invalid argument, naming it and what is
            allowed: no trainable parameters, ``every <= 0``, an unknown signal, a
            non-empty ``out``, a missing or failing ``probe_batch``/``loss_fn``, a
            ``factory`` that is not an importable function.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        out: str | Path,
        steps: int | None = None,
        signals: Sequence[str] = DEFAULT_SIGNALS,
        every: int = 100,
        probe_batch: Any = None,
        loss_fn: LossFn | None = None,
        on_warning: Callable[[EarlyWarning], Any] | None = None,
        expensive_every: int | None = None,
        background: bool = False,
        checkpoint_every: int | None = None,
        settings: dict[str, Any] | None = None,
        target: Target | None = None,
        detect: DetectConfig | None = None,
        seed: int = 0,
        config: dict[str, Any] | None = None,
        factory: str | None = None,
        factory_kwargs: dict[str, Any] | None = None,
    ) -> None:
        t0 = time.perf_counter()
        require(isinstance(model, nn.Module), "model", "a torch.nn.Module", type(model).__name__)
        params = [p for p in model.parameters() if p.requires_grad]
        require(bool(params), "model", "a model with parameters that require grad", "none")
        for name, v in (("every", every), ("expensive_every", expensive_every or 1)):
            require(isinstance(v, int) and v >= 1, name, "an integer >= 1", v)
        for name, v in (("steps", steps), ("checkpoint_every", checkpoint_every)):
            ok = v is None or (isinstance(v, int) and v >= 1)
            require(ok, name, "None or an integer >= 1", v)
        require(on_warning is None or callable(on_warning), "on_warning", "a callable", on_warning)
        require(target is None or isinstance(target, Target), "target", "a Target", target)
        self.resolved = runner.resolve(list(signals), settings)
        needs = sorted(set(self.resolved) & NEEDS_LOSS)
        if needs and (probe_batch is None or loss_fn is None):
            require(False, "probe_batch/loss_fn", f"both given (signals {needs} need them)", None)
        self.factory = check_factory(factory, factory_kwargs)
        self.out = Path(out)
        _check_out(self.out)
        self.model, self.every, self.steps, self.seed = model, every, steps, seed
        self.expensive_every = expensive_every or 10 * every
        self.checkpoint_every, self.target = checkpoint_every, target
        self.detect_cfg = detect or DetectConfig()
        self.task = WatchedTask(model, probe_batch, loss_fn) if loss_fn is not None else None
        self._user_warn = on_warning
        self.detector = (
            OnlineDetector(steps, self.detect_cfg, on_warning=self._warned) if steps else None
        )
        self.disabled: dict[str, str] = {}
        self.problems: list[str] = []
        self._said: set[tuple[str, str]] = set()
        self.rows: list[tuple[int, str, float]] = []
        self.last_step: int | None = None
        self.timers = dict.fromkeys(("signals", "detect", "io", "other"), 0.0)  # in step()
        self.once = dict.fromkeys(("setup", "close", "background", "background_cpu"), 0.0)
        self.user_seconds, self._last_return, self.closed = 0.0, None, False
        self._timed = 0.0
        self._logged: set[str] = set()
        self._unstored: list[runner.StepResult] = []
        self._prev: tuple[int, dict[str, torch.Tensor]] | None = None
        bg = background and self.task is not None and bool(set(self.resolved) & EXPENSIVE)
        self.background = bg
        self.rd = create_run_at(self.out, self._config(config, model, params), describe("cpu"))
        hashes = {n: settings_hash(n, st) for n, st in self.resolved.items()}
        self.store = SignalStore(self.rd, self.resolved, hashes)
        self.worker = Background(model, probe_batch, loss_fn) if bg else None
        if probe_batch is not None:
            try:
                save_probe(self.rd, probe_batch)
            except Exception as e:
                self._problem("probe", f"probe batch not stored ({e}): `measure` cannot run")
        if steps is None:
            self._problem("steps", "steps= not given: no early warnings (windows need it)")
        self.once["setup"] = time.perf_counter() - t0

    # ---- construction helpers ----------------------------------------------------------
    def _config(self, user: dict | None, model: nn.Module, params: list) -> dict[str, Any]:
        task = {
            "model": type(model).__name__,
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in params),
            "probe_n": self.task.probe_size if self.task else None,
            "signals": {n: dataclasses.asdict(s) for n, s in self.resolved.items()},
            "factory": self.factory[0],
            "factory_kwargs": self.factory[1],
            "user": dict(user or {}),
        }
        train = {
            "seed": self.seed,
            "steps": self.steps,
            "eval_every": self.every,
            "expensive_every": self.expensive_every,
            "checkpoint_every": self.checkpoint_every,
            "background": self.background,
            "device": str(next(model.parameters()).device),
        }
        return {"phenomenon": WATCHED, "preset": "custom", "task": task, "train": train}

    def _problem(self, kind: str, message: str, key: str = "") -> None:
        """Log a problem once per (kind, key) and keep it for ``close()``."""
        if (kind, key) not in self._said:
            self._said.add((kind, key))
            self.problems.append(message)
            log.warning("phasewatch Watcher: %s", message)

    def _warned(self, w: EarlyWarning) -> None:
        try:
            (self._user_warn or (lambda w: log.warning("phasewatch: %s", w)))(w)
        except Exception as e:
            self._problem("on_warning", f"on_warning raised {type(e).__name__}: {e}")

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
        t0 = time.perf_counter()
        self._timed = 0.0
        if self._last_return is not None:
            self.user_seconds += t0 - self._last_return
        try:
            if not self.closed:
                self._step(step, metrics or {})
        except Exception as e:  # never crash the user's training
            self._problem("internal", f"step({step!r}) failed: {type(e).__name__}: {e}", repr(e))
        finally:
            self._last_return = time.perf_counter()
            self.timers["other"] += self._last_return - t0 - self._timed

    def _step(self, step: Any, metrics: dict[str, Any]) -> None:
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            return self._problem("step", f"step={step!r} skipped; allowed: an integer >= 0")
        if self.last_step is not None and step < self.last_step:
            return self._problem(
                "order", f"step {step} after {self.last_step} skipped; steps must not decrease"
            )
        repeat = step == self.last_step  # more metrics for the current step (adapters' logs)
        if not repeat:
            self.last_step, self._logged = step, set()
        values = self._clean(step, metrics)
        for k in sorted(set(values) & self._logged):
            self._problem("repeat", f"metric {k!r} logged twice at step {step}: kept the first", k)
            del values[k]
        self._logged |= set(values)
        self.rows += [(step, k, v) for k, v in values.items()]
        if self.detector is not None:
            self.detector.add(step, values)
        if repeat:
            return None
        expensive = [n for n in self.resolved if n in EXPENSIVE and n not in self.disabled]
        cheap = [n for n in self.resolved if n not in EXPENSIVE and n not in self.disabled]
        if cheap and step % self.every == 0:
            self._timing("signals", self._measure, step, cheap)
        if expensive and step % self.expensive_every == 0:
            if self.worker is not None:
                self._timing("io", self._submit, step, expensive)
            else:
                self._timing("signals", self._measure, step, expensive)
        if self.checkpoint_every and step % self.checkpoint_every == 0:
            self._timing("io", self._checkpoint, step)
        if step % self.every == 0:
            self._timing("io", self._collect_background)
            if self.detector is not None:
                self._timing("detect", self.detector.update)
            if step % (10 * self.every) == 0:
                self._timing("io", self._flush, "running")

    def _timing(self, kind: str, fn: Callable, *args: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            dt = time.perf_counter() - t
            self.timers[kind] += dt
            self._timed += dt

    def _clean(self, step: int, metrics: dict[str, Any]) -> dict[str, float]:
        out = {}
        for key, v in metrics.items():
            try:
                x = float(v.item() if torch.is_tensor(v) else v)
            except (TypeError, ValueError, RuntimeError):
                self._problem("type", f"metric {key!r} is not a number ({type(v).__name__})", key)
                continue
            if not isinstance(key, str) or not key:
                self._problem("key", f"metric key {key!r} skipped; allowed: a non-empty str", key)
            elif not math.isfinite(x):
                self._problem("finite", f"metric {key!r} = {x} at step {step}: skipped", key)
            else:
                out[key] = x
        return out

    # ---- signals -----------------------------------------------------------------------
    @contextlib.contextmanager
    def _isolated(self) -> Iterator[None]:
        """Eval mode, a forked RNG and grad enabled while signals run; all restored."""
        modes = [(m, m.training) for m in self.model.modules()]
        cuda = sorted({p.device.index or 0 for p in self.model.parameters() if p.is_cuda})
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=cuda), torch.enable_grad():
                yield
        finally:
            for m, mode in modes:
                m.training = mode

    def _probe(self, step: int) -> Any:
        prev = self._prev
        if self.task is None:  # geometry only: it reads the weights
            return runner.Probe(self.model, loss=lambda: torch.zeros(()), n=1, step=step)
        return runner.make_probe(self.task, step, prev[1] if prev else None, prev and prev[0])

    def _measure(self, step: int, names: list[str]) -> None:
        jobs = [(n, dataclasses.asdict(self.resolved[n])) for n in names]
        errors: dict[str, str] = {}
        with self._isolated():
            res = runner.measure_probe(self._probe(step), jobs, errors=errors)
        if "gradients" in names and "gradients" not in errors:
            self._prev = (step, {k: v.detach().clone() for k, v in self.model.state_dict().items()})
        self._merge(res, errors)

    def _merge(self, res: runner.StepResult, errors: dict[str, str]) -> None:
        for name, err in errors.items():
            if name not in self.disabled:
                self.disabled[name] = f"step {res.step}: {err}"
                log.warning(
                    "phasewatch Watcher: signal %s disabled at step %d: %s", name, res.step, err
                )
        if not res.rows:
            return
        self._unstored.append(res)  # written to signals.parquet at the next flush
        if self.detector is not None:
            self.detector.add(res.step, {r[1]: r[2] for r in res.rows})

    def _checkpoint(self, step: int) -> None:
        if step not in self.rd.checkpoint_steps():
            self.rd.save_checkpoint(step, _state(self.model))

    def _submit(self, step: int, names: list[str]) -> None:
        jobs = [(n, dataclasses.asdict(self.resolved[n])) for n in names]
        try:
            self.worker.submit(step, jobs)  # llc and hessian need no previous weights
        except Exception as e:  # the model cannot be copied: measure inline from now on
            self._problem("background", f"background signals off, measured inline: {e!r}")
            self._collect_background(final=True)
            self.worker, self.background = None, False
            self._measure(step, names)

    def _collect_background(self, final: bool = False) -> None:
        if self.worker is None:
            return
        results, missing = self.worker.finish() if final else (self.worker.poll(), [])
        if missing:
            self._problem("background", f"background thread died before steps {missing}")
        for d in results:
            self.once["background"] += d.seconds
            self.once["background_cpu"] += d.cpu_seconds
            self._merge(d.result, d.errors)

    def _flush(self, status: str) -> None:
        self.store.add_many(self._unstored)
        self._unstored = []
        self.rd.write_metrics(tidy(self.rows))
        self.rd.set_status(status, self.last_step or 0)

    # ---- the end -----------------------------------------------------------------------
    def overhead(self) -> dict[str, float]:
        """Seconds the Watcher took, and as % of the training loop's own time.

        Returns:
            ``<kind>_seconds`` inside ``step()`` (signals, detect, io, other), ``loop_seconds``
            (their sum), ``setup_seconds`` and ``close_seconds`` (once),
            ``background_seconds``/``background_cpu_seconds`` (the background thread's
            wall and CPU time, beside training), ``user_seconds``
            (time between ``step()`` calls: the user's own work), ``percent_of_step_time``
            (loop / user) and ``percent_with_setup_and_close``.
        """
        loop = sum(self.timers.values())
        once = self.once["setup"] + self.once["close"]
        user = self.user_seconds

        def pct(x: float) -> float:
            return round(100.0 * x / user, 2) if user > 0 else float("nan")

        return {
            **{f"{k}_seconds": round(v, 4) for k, v in self.timers.items()},
            "loop_seconds": round(loop, 4),
            **{f"{k}_seconds": round(v, 4) for k, v in self.once.items()},
            "user_seconds": round(user, 4),
            "percent_of_step_time": pct(loop),
            "percent_with_setup_and_close": pct(loop + once),
        }

    def close(self) -> dict[str, Any]:
        """Finish: wait for background signals, write every file of the run directory, log
        a summary (overhead, disabled signals, warnings). Idempotent; never raises.

        Returns:
            The ``watch`` block written to events.json.
        """
        if self.closed:
            return self.rd.events().get("watch", {})
        self.closed = True
        t0 = time.perf_counter()
        if self._last_return is not None:
            self.user_seconds += t0 - self._last_return
        try:
            self._collect_background(final=True)
            if self.detector is not None:
                self.detector.update()
            return close_run(self, t0)
        except Exception as e:
            log.exception("phasewatch Watcher: close() failed")
            with contextlib.suppress(Exception):
                self.rd.set_status("failed", self.last_step or 0, f"{type(e).__name__}: {e}")
            return {}

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["DEFAULT_SIGNALS", "EXPENSIVE", "EarlyWarning", "Watcher"]
