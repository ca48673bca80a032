"""Sweep executors: a local process pool (default) and Ray, and what a worker runs.

The unit of work (:mod:`phasewatch.sweep.plan`) is a list of members trained either one
after another or as one batched model (:mod:`phasewatch.training.batched`).
:func:`run_unit` is what a worker runs, locally or as a Ray task: it creates or reopens
each member's run directory, skips members already ``done``/``failed``, resumes the
others from their last checkpoint, and returns each member's final status. A unit can
therefore be re-run at any time (after a crash, or by Ray's retry) without redoing work
or making duplicates.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from phasewatch.config import TrainConfig, available_cores
from phasewatch.errors import ConfigError, RunFailed, StoreError
from phasewatch.store.lock import run_lock
from phasewatch.training.progress import progress_bar

RAY_CONNECT_TIMEOUT_S = 15.0


# ---- what a worker runs -------------------------------------------------------------------
def _open_member(path: Path, cfg: dict[str, Any]):
    from phasewatch.store.env import describe
    from phasewatch.store.run import RunDir, create_run_at

    rd = RunDir(path)
    try:
        rd.config()
        rd.status()
        return rd
    except StoreError:
        train = TrainConfig(**cfg["train"])
        return create_run_at(path, cfg, describe(train.device, train.num_threads))


def _threads_in_force(rds: Sequence[Any], train: TrainConfig) -> None:
    """Set this process's torch threads as the trainer will (``train.num_threads``) and
    record the count then in force in each member's ``env.json`` (``torch_threads``)."""
    import torch

    from phasewatch.store.atomic import write_json

    torch.set_num_threads(train.num_threads)
    for rd in rds:
        try:
            env = rd.env()
        except StoreError:  # missing or damaged: record what is known now
            env = {}
        write_json(rd.path / "env.json", {**env, "torch_threads": torch.get_num_threads()})


def _train_one(rd, report: bool) -> str:
    from phasewatch import api

    _threads_in_force([rd], api.configs(rd.config())[2])
    try:
        api.train_run(rd, resume=True, progress=False, report=report)
    except RunFailed:
        return "failed"
    return "done"


def _train_together(rds: Sequence[Any], report: bool) -> list[str]:
    """Train members as batches of equal resume step; finish each trained member."""
    from phasewatch import api
    from phasewatch.training import batched

    by_start: dict[int, list[tuple[Any, Any]]] = {}
    for rd in rds:
        point = rd.resume_point()
        by_start.setdefault(point[0] if point else 0, []).append((rd, point))
    status = {}
    for start, group in by_start.items():
        tasks, cfgs = [], []
        for rd, _ in group:
            phen, task_cfg, train_cfg = api.configs(rd.config())
            tasks.append(phen.build(task_cfg, train_cfg))
            cfgs.append(train_cfg)
        states = [(p[1], p[2]) for _, p in group] if start > 0 else None
        runs = [rd for rd, _ in group]
        _threads_in_force(runs, cfgs[0])  # the batch trains with its first member's threads
        outcome = batched.train_batched(runs, tasks, cfgs, start=start, states=states)
        for rd, result in zip(runs, outcome):
            if result == "trained":
                api.finish_run(rd, report=report)
            status[rd.path] = "done" if result == "trained" else "failed"
    return [status[rd.path] for rd in rds]


def _lock_members(paths: Sequence[Path], stack: contextlib.ExitStack) -> dict[Path, str]:
    """Take each member's run lock (:func:`~phasewatch.store.lock.run_lock`, the lock a
    single ``phasewatch run`` takes; the folder is made if missing) into ``stack``;
    ``{path: error}`` of the members another process holds (or that cannot be made)."""
    busy = {}
    for path in paths:
        try:
            path.mkdir(parents=True, exist_ok=True)
            stack.enter_context(run_lock(path))
        except OSError as e:
            busy[path] = f"{path}: not writable ({e.strerror})"
        except (ConfigError, StoreError) as e:
            busy[path] = str(e)
    return busy


def run_unit(unit: dict[str, Any]) -> list[dict[str, Any]]:
    """Train one unit: ``{"members": [[path, config], ...], "batched": bool, "report":
    bool}``. Returns ``[{"path", "status"}]`` with status ``done`` or ``failed``, or
    ``error`` with an ``error`` line for a member whose run lock another process holds
    (that member is left untouched).

    Each member is opened and trained under its run lock (``.run.lock``). An unexpected
    error (e.g. a failing disk) is re-raised (so Ray retries the unit) after the members
    this process left ``running`` are marked ``interrupted`` with the error: a worker that
    lives on (a Ray or pool worker) must not keep them "being trained"."""
    with contextlib.ExitStack() as locks:
        busy = _lock_members([Path(p) for p, _ in unit["members"]], locks)
        rds = [_open_member(Path(p), cfg) for p, cfg in unit["members"] if Path(p) not in busy]
        finished = {rd.path: rd.status()["status"] for rd in rds}
        todo = [rd for rd in rds if finished[rd.path] not in ("done", "failed")]
        try:
            if unit["batched"] and len(todo) > 1:
                trained = _train_together(todo, unit["report"])
                finished.update(zip((rd.path for rd in todo), trained))
            else:
                finished.update({rd.path: _train_one(rd, unit["report"]) for rd in todo})
        except Exception as e:
            _mark_interrupted(todo, _error_line(e))
            raise
    return [
        {"path": p, "status": "error", "error": busy[Path(p)]}
        if Path(p) in busy
        else {"path": p, "status": finished[Path(p)]}
        for p, _ in unit["members"]
    ]


def _mark_interrupted(rds: Sequence[Any], error: str) -> None:
    """Members still ``running`` under this process become ``interrupted`` (best effort:
    the error that brought us here may also stop this write)."""
    for rd in rds:
        with contextlib.suppress(Exception):
            status = rd.status()
            if status.get("status") == "running" and status.get("pid") == os.getpid():
                rd.set_status("interrupted", status.get("step", 0), error=error)


def _error_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


# ---- executors ----------------------------------------------------------------------------
def _count(results: list[dict[str, Any]]) -> str:
    done = sum(r["status"] == "done" for r in results)
    return f"{done} done, {len(results) - done} failed"


def _watch_parent(parent: int) -> None:
    """In a pool worker: exit as soon as the sweep process is gone (e.g. kill -9), so
    that no orphan keeps writing while the sweep is resumed."""
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(1)


def _worker_init(parent: int) -> None:
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _unit_error(unit: dict[str, Any], e: BaseException) -> list[dict[str, Any]]:
    return [{"path": p, "status": "error", "error": _error_line(e)} for p, _ in unit["members"]]


def unit_cost(unit: dict[str, Any]) -> int:
    """A unit's work in member-steps (its members' ``train.steps`` summed)."""
    return sum(int(cfg["train"].get("steps", 1)) for _, cfg in unit["members"])


def longest_first(units: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``units`` by decreasing :func:`unit_cost` (ties keep their order): with workers
    taking the next unit as soon as they are free, the longest-processing-time-first
    order bounds the makespan by 4/3 of the optimum (Graham 1969, "Bounds on
    multiprocessing timing anomalies", SIAM J. Appl. Math. 17(2), Theorem 2)."""
    return sorted(units, key=unit_cost, reverse=True)


class LocalSession:
    """A process pool of ``workers`` processes; in-process if one.

    Units are handed out longest first (:func:`longest_first`) one at a time: a worker
    takes the next unit the moment it finishes one, so none sits idle while units remain.
    """

    def __init__(self, workers: int, run: Callable[[dict], list[dict]] = run_unit) -> None:
        """``run`` is what a worker calls per unit (:func:`run_unit`; a picklable
        module-level function)."""
        self.workers = workers or available_cores()
        self.run = run

    def execute(self, units: list[dict], out: Path, *, progress: bool) -> list[dict]:
        """Run every unit (:func:`run_unit`) and collect the members' statuses.

        Args:
            units: units of :func:`phasewatch.sweep.plan.plan`.
            out: the sweep directory (names the progress bar).
            progress: show a bar over members with the done/failed counts.

        Returns:
            ``[{"path", "status"}]`` per member; a unit whose worker crashed gives its
            members status ``error`` with an ``error`` line, and the other units go on.
        """
        units = longest_first(units)
        total = sum(len(u["members"]) for u in units)
        results: list[dict[str, Any]] = []
        with progress_bar(progress) as bar:
            bar_id = bar.add_task(f"sweep {out.name}", total=total, info="")
            if min(self.workers, len(units)) <= 1:
                for u in units:
                    results += self.run(u)
                    bar.update(bar_id, advance=len(u["members"]), info=_count(results))
                return results
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            n = min(self.workers, len(units))
            with ProcessPoolExecutor(n, ctx, _worker_init, (os.getpid(),)) as pool:
                futures = {pool.submit(self.run, u): u for u in units}
                for f in as_completed(futures):
                    u = futures[f]
                    try:
                        results += f.result()
                    except Exception as e:  # a unit's crash must not stop the others
                        results += _unit_error(u, e)
                    bar.update(bar_id, advance=len(u["members"]), info=_count(results))
        return results

    def close(self) -> None:
        """Nothing to release."""


class RaySession:
    """A Ray connection: one task per unit (``num_cpus`` = the members' threads), retried
    once on failure; a progress bar over tasks."""

    def __init__(self, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "--executor ray needs Ray; allowed: pip install 'phasewatch[ray]'"
            ) from None
        self.ray = ray
        _check_reachable(address)
        self.owned = not ray.is_initialized()
        if self.owned:
            _ray_connect(ray, address)
            return
        current = ray.get_runtime_context().gcs_address
        if address not in (None, "auto", current):
            raise ConfigError(
                f"--address {address}: this process is already connected to Ray at {current}; "
                f"allowed: {current}, auto, or ray.shutdown() first"
            )

    def execute(self, units: list[dict], out: Path, *, progress: bool) -> list[dict]:
        """Run every unit as a Ray task and collect the members' statuses.

        Args:
            units: units of :func:`phasewatch.sweep.plan.plan`.
            out: the sweep directory (names the progress bar).
            progress: show a bar over Ray tasks with the members' done/failed counts.

        Returns:
            ``[{"path", "status"}]`` per member; a unit that failed twice gives its
            members status ``error`` with an ``error`` line, and the other units go on.
        """
        ray = self.ray
        task = ray.remote(max_retries=1, retry_exceptions=True)(run_unit)
        refs = {}
        for u in longest_first(units):
            threads = TrainConfig(**u["members"][0][1]["train"]).num_threads
            refs[task.options(num_cpus=threads).remote(u)] = u
        results: list[dict[str, Any]] = []
        pending = list(refs)
        with progress_bar(progress) as bar:
            bar_id = bar.add_task(f"sweep {out.name} (ray tasks)", total=len(units), info="")
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    try:
                        results += ray.get(ref)
                    except Exception as e:  # failed twice (Ray retried it once)
                        results += _unit_error(refs[ref], e)
                    bar.update(bar_id, advance=1, info=_count(results))
        return results

    def close(self) -> None:
        """Disconnect from Ray if this session connected (``ray.shutdown()``)."""
        if self.owned:
            self.ray.shutdown()


def _check_reachable(address: str | None) -> None:
    """For ``host:port``: a TCP connection within 10 s, else one clear error."""
    if not address or address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=10):
            pass
    except (OSError, ValueError) as e:
        why = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise ConfigError(
            f"--address {address}: no Ray cluster reachable ({why}); allowed: auto, or "
            "host:port of a running `ray start --head`"
        ) from None


def _ray_connect(ray: Any, address: str | None) -> None:
    """``ray.init(address)`` within :data:`RAY_CONNECT_TIMEOUT_S`, else one clear error."""
    where = f"--address {address}" if address else "--executor ray"
    failure: list[BaseException] = []

    def init() -> None:
        """``ray.init`` in a thread; an exception is kept in ``failure``."""
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except BaseException as e:  # reported by the caller
            failure.append(e)

    t = threading.Thread(target=init, daemon=True)
    t.start()
    t.join(RAY_CONNECT_TIMEOUT_S)
    if t.is_alive() or failure:
        why = (
            f"no answer within {RAY_CONNECT_TIMEOUT_S:.0f} s"
            if t.is_alive()
            else str(failure[0]).strip().splitlines()[0]
        )
        raise ConfigError(
            f"{where}: cannot connect to Ray ({why}); allowed: auto, or host:port of a "
            "running `ray start --head`"
        )


def connect(spec: Any) -> LocalSession | RaySession:
    """The executor session of ``spec`` (connects to Ray before anything is written)."""
    if spec.executor == "ray":
        return RaySession(spec.address)
    return LocalSession(spec.workers)
