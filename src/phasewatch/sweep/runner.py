"""Running a sweep: the sweep directory's lock, each member's status, start and resume.

:func:`run_sweep` checks the spec against ``sweep.json``, refuses members being trained by
a live process, makes the training plan (:mod:`phasewatch.sweep.plan`) and hands the units
to an executor (:mod:`phasewatch.sweep.executors`). Resuming trains only members that are
not ``done`` or ``failed``, each from its last checkpoint, into the same directory.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phasewatch.errors import ConfigError, StoreError
from phasewatch.store.lock import sweep_lock
from phasewatch.sweep import executors
from phasewatch.sweep import plan as planning
from phasewatch.sweep.spec import (
    SPEC_FILE,
    Member,
    SweepSpec,
    build_spec,
    members,
    read_spec,
    write_spec,
)


@dataclass
class SweepResult:
    """What a sweep invocation did.

    Attributes:
        out: the sweep directory.
        total: members in the sweep.
        skipped: members already ``done`` or ``failed`` before this invocation.
        done, failed: members that ended ``done`` / ``failed`` (NaN) in this invocation.
        unfinished: ``(name, error)`` of members an executor could not finish.
        plan: the training plan (strategy, batch size, measurement).
    """

    out: Path
    total: int
    skipped: list[str]
    done: list[str]
    failed: list[str]
    unfinished: list[tuple[str, str]]
    plan: dict[str, Any]


# ---- the sweep directory ------------------------------------------------------------------


def member_status(path: Path) -> str:
    """``missing`` (not created or creation cut short), ``done``, ``failed``, ``running``
    (a live process on this host other than this one) or ``interrupted``."""
    from phasewatch.store import RunDir
    from phasewatch.store.index import live_status

    rd = RunDir(path)
    if not (path / "config.json").is_file():
        return "missing"
    try:
        rd.config()
        status = rd.status()
    except StoreError:
        return "missing"
    if status.get("pid") == os.getpid() and status.get("host") == socket.gethostname():
        return "interrupted" if status.get("status") == "running" else status["status"]
    return live_status(status) or "interrupted"


def _here(path: Path) -> bool:
    """Whether the member's status was last written on this host. A ``running`` member
    of another host (a Ray node) is stale once this process holds the sweep: the tasks
    of a dead Ray driver are stopped with it."""
    return json.loads((path / "status.json").read_text()).get("host") == socket.gethostname()


# ---- running --------------------------------------------------------------------------------
def _stored_plan(spec: SweepSpec, out: Path, resume: bool) -> dict[str, Any] | None:
    """The plan recorded in ``out`` by an earlier invocation of the same sweep, or None.

    Raises:
        ConfigError: if ``out`` holds a different sweep.
        StoreError: if ``resume`` and ``out`` is not a sweep directory.
    """
    if (out / SPEC_FILE).exists():
        old, plan = read_spec(out)
        if not old.same_members(spec):
            raise ConfigError(
                f"--out {out} holds a different sweep ({SPEC_FILE}); "
                f"allowed: --resume {out}, or another --out"
            )
        return plan
    if resume:
        raise StoreError(f"{out}: no {SPEC_FILE}; not a sweep directory")
    return None


def _result(
    out: Path, todo_all: list[Member], states: dict[str, str], results: list[dict], plan: dict
) -> SweepResult:
    """Sort the executor's per-member ``results`` into a :class:`SweepResult`."""
    by_status: dict[str, list[str]] = {"done": [], "failed": []}
    unfinished = []
    for r in results:
        name = str(Path(r["path"]).relative_to(out))
        if r["status"] in by_status:
            by_status[r["status"]].append(name)
        else:
            unfinished.append((name, r.get("error") or r["status"]))
    return SweepResult(
        out=out,
        total=len(todo_all),
        skipped=[m.name for m in todo_all if states[m.name] in ("done", "failed")],
        done=by_status["done"],
        failed=by_status["failed"],
        unfinished=unfinished,
        plan=plan,
    )


def run_sweep(
    spec: SweepSpec, out: str | Path, *, progress: bool = True, resume: bool = False
) -> SweepResult:
    """Train every member of ``spec`` that is not finished yet into ``out``.

    Nothing is written before the spec is valid and (for Ray) the cluster answers. An
    ``out`` that already holds the same sweep is continued (as ``resume``); one that
    holds a different sweep is an error.

    Raises:
        ConfigError: invalid spec, a different sweep in ``out``, unreachable Ray cluster,
            another process sweeping ``out``, or a member being trained by a live process.
        StoreError: ``out`` not writable.
    """
    out = Path(out)
    todo_all = members(spec, out)
    plan = _stored_plan(spec, out, resume)
    states = {m.name: member_status(m.path) for m in todo_all}
    live = [m.name for m in todo_all if states[m.name] == "running" and _here(m.path)]
    if live:
        raise ConfigError(
            f"{out}: member {live[0]} is being trained by a live process; "
            "allowed: wait for it or stop it, then --resume"
        )
    session = executors.connect(spec)
    try:
        with sweep_lock(out):
            todo = [m for m in todo_all if states[m.name] not in ("done", "failed")]
            units, plan = planning.plan(spec, todo, plan)
            write_spec(out, spec, plan)
            results = session.execute(units, out, progress=progress)
    finally:
        session.close()
    return _result(out, todo_all, states, results, plan)


def resume_sweep(
    out: str | Path, overrides: dict[str, Any] | None = None, *, progress: bool = True
) -> SweepResult:
    """Finish the sweep in ``out`` with its stored spec; ``overrides`` may change only
    how it runs (``executor``, ``workers``, ``address``, ``report``).

    Raises:
        StoreError: if ``out`` is not a sweep directory.
        ConfigError: as :func:`run_sweep`, or an override that would change the members.
    """
    spec, _ = read_spec(out)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    allowed = ("executor", "workers", "address", "report")
    bad = sorted(set(given) - set(allowed))
    if bad:
        raise ConfigError(
            f"--resume continues the stored sweep; drop: {', '.join(bad)} "
            f"(allowed with --resume: {', '.join(allowed)})"
        )
    spec = build_spec({**spec.to_json(), **given})
    return run_sweep(spec, out, progress=progress, resume=True)
