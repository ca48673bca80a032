"""The Watcher's background worker: expensive signals on saved checkpoints, in order.

The training process saves a checkpoint (``checkpoints/step_XXXXXX.safetensors``) and
writes one JSON line per job to the worker's standard input: ``{"step", "previous",
"jobs": [[signal, settings fields], ...]}``. The worker (``python -m
phasewatch.watch_worker RUN``, one torch thread, lower CPU priority) measures each job with
:func:`phasewatch.signals.runner.measure_step` — the code path of ``phasewatch measure`` —
and writes ``watch/background/step_XXXXXX.pkl`` (the result, per-signal errors, seconds),
atomically. It reads until its input is closed, so **every submitted checkpoint is
measured**: :meth:`Background.finish` closes the input, waits for the worker to exit and
collects every result, whatever the scheduling. A signal that fails is disabled for the
later checkpoints, in submission order, so the outcome does not depend on timing either.
A separate process (not ``fork``, not ``multiprocessing`` spawn) never re-runs the user's
script and never inherits its threads.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = "watch/background"


def _result_path(run: Path, step: int) -> Path:
    return run / RESULTS / f"step_{step:06d}.pkl"


class Background:
    """Handle on the worker process of one run (started on the first :meth:`submit`)."""

    def __init__(self, run: str | Path) -> None:
        self.run = Path(run)
        self.proc: subprocess.Popen | None = None
        self.submitted: list[int] = []
        self.collected: set[int] = set()

    def submit(self, step: int, previous: int | None, jobs: list[tuple[str, dict]]) -> None:
        """Queue checkpoint ``step`` (already saved) for ``jobs``."""
        if self.proc is None:
            (self.run / RESULTS).mkdir(parents=True, exist_ok=True)
            log = open(self.run / "watch" / "background.log", "ab")  # noqa: SIM115
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "phasewatch.watch_worker", str(self.run)],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                env=env,
            )
            log.close()
        line = json.dumps({"step": step, "previous": previous, "jobs": jobs})
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        self.submitted.append(step)

    def poll(self) -> list[dict[str, Any]]:
        """Results written so far and not yet collected, in step order (non-blocking)."""
        out = []
        for step in self.submitted:
            if step in self.collected:
                continue
            f = _result_path(self.run, step)
            if not f.exists():
                break  # the worker goes in order: later ones are not ready either
            out.append(pickle.loads(f.read_bytes()))
            self.collected.add(step)
        return out

    def finish(self) -> tuple[list[dict[str, Any]], list[int], int | None]:
        """Close the input, wait for the worker to measure every queued checkpoint and exit.

        Returns:
            ``(results not yet collected, steps without result, worker exit code)``; steps
            are missing only if the worker died (its log is ``watch/background.log``).
        """
        if self.proc is None:
            return [], [], None
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        code = self.proc.wait()
        results = self.poll()
        missing = [s for s in self.submitted if s not in self.collected]
        return results, missing, code


def serve(run: str) -> None:
    """The worker loop (see module docstring)."""
    import torch

    from phasewatch.signals.runner import StepResult, measure_step
    from phasewatch.store.atomic import atomic_path

    torch.set_num_threads(1)
    try:
        os.nice(5)
    except OSError:
        pass
    disabled: dict[str, str] = {}
    for line in sys.stdin:
        item = json.loads(line)
        jobs = [(n, f) for n, f in item["jobs"] if n not in disabled]
        errors: dict[str, str] = {}
        t0 = time.perf_counter()
        try:
            res = measure_step(run, item["step"], item["previous"], jobs, errors=errors)
        except Exception as e:  # the probe or checkpoint cannot be loaded: every job fails
            res = StepResult(item["step"])
            errors.update({n: f"{type(e).__name__}: {e}" for n, _ in jobs})
        disabled.update(errors)
        blob = {"result": res, "errors": errors, "seconds": time.perf_counter() - t0}
        with atomic_path(_result_path(Path(run), item["step"])) as tmp:
            tmp.write_bytes(pickle.dumps(blob))


if __name__ == "__main__":
    serve(sys.argv[1])
