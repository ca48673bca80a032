"""One folder per run (DESIGN.md §9).

Layout::

    <run>/config.json              phenomenon, preset, task and train configs
    <run>/env.json                 versions, git hash, CPU, threads
    <run>/status.json              running | done | failed, last step, error
    <run>/metrics.parquet          tidy table: step (int64), key (str), value (float64)
    <run>/checkpoints/step_XXXXXX.safetensors        model weights after XXXXXX updates
    <run>/checkpoints/optim_step_XXXXXX.safetensors  optimiser state (latest only)
    <run>/events.json              onsets and phenomenon-specific findings
    <run>/tables/<name>.parquet    phenomenon findings for the report (optional)
    <run>/report.html, figures/*.png
    <run>/.run.lock                 OS file lock held while a process trains the run

Every file is written atomically (:mod:`phasewatch.store.atomic`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError, safe_open

from phasewatch.errors import StoreError
from phasewatch.store import atomic

if TYPE_CHECKING:  # torch and pandas load on first use (`phasewatch runs ls` needs neither)
    import pandas as pd
    import torch

METRIC_COLUMNS = ["step", "key", "value"]
_CKPT = re.compile(r"^step_(\d+)\.safetensors$")
_OPTIM = re.compile(r"^optim_step_(\d+)\.safetensors$")
_TRAINED = (
    "checkpoints",
    "metrics.parquet",
    "events.json",
    "signals.parquet",
    "signals.json",
    "tables",
    "figures",
    "report.html",
)


def empty_metrics() -> pd.DataFrame:
    """A metrics table with no rows and the typed columns step (int64), key (str), value
    (float64)."""
    import pandas as pd

    return pd.DataFrame(
        {
            "step": pd.Series(dtype="int64"),
            "key": pd.Series(dtype="str"),
            "value": pd.Series(dtype="float64"),
        }
    )


def tidy(rows: list[tuple[int, str, float]]) -> pd.DataFrame:
    """Rows ``(step, key, value)`` as a typed tidy DataFrame."""
    import pandas as pd

    if not rows:
        return empty_metrics()
    df = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    return df.astype({"step": "int64", "key": "str", "value": "float64"})


class RunDir:
    """A run directory on disk; every method reads or writes the store, nothing else."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # ---- small JSON files -------------------------------------------------------------
    def _read_json(self, name: str, kind: type = dict) -> Any:
        """``<run>/<name>`` parsed; it must hold a JSON ``kind`` (an object by default).

        Raises:
            StoreError: if it is missing, unreadable (a directory, no permission),
                unparsable or of another type.
        """
        f = self.path / name
        try:
            data = json.loads(f.read_text())
        except FileNotFoundError:
            raise StoreError(f"{self.path}: missing {name}; not a phasewatch run") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise StoreError(f"{self.path}: corrupted {name} ({e})") from None
        except OSError as e:
            raise StoreError(f"{self.path}: unreadable {name} ({e.strerror})") from None
        if not isinstance(data, kind):
            raise StoreError(
                f"{self.path}: corrupted {name} (a JSON {type(data).__name__}; allowed: an object)"
            )
        return data

    @property
    def id(self) -> str:
        """The run's id: the name of its folder."""
        return self.path.name

    def config(self) -> dict[str, Any]:
        """``config.json``: phenomenon, preset, task and train configs.

        Raises:
            StoreError: if the file is missing, unparsable or lacks ``phenomenon`` (a
                string), ``task`` or ``train`` (objects).
        """
        cfg = self._read_json("config.json")
        ok = {"phenomenon", "task", "train"} <= set(cfg) and isinstance(cfg["phenomenon"], str)
        if not ok or not all(isinstance(cfg[k], dict) for k in ("task", "train")):
            raise StoreError(
                f"{self.path}: corrupted config.json (needs phenomenon: a string, task and "
                "train: objects)"
            )
        return cfg

    def env(self) -> dict[str, Any]:
        """``env.json``: versions, git hash, hardware and threads (:mod:`.env`).

        Raises:
            StoreError: if the file is missing or unparsable.
        """
        return self._read_json("env.json")

    def status(self) -> dict[str, Any]:
        """``status.json``: ``status``, last ``step``, ``error``, ``pid``, ``host`` and
        ``updated`` (local time, ISO 8601), as written by :meth:`set_status`.

        Raises:
            StoreError: if the file is missing or unparsable.
        """
        return self._read_json("status.json")

    def remove_temporary(self) -> list[Path]:
        """Delete the ``.*.tmp`` files an interrupted atomic write left in the run (call it
        under the run's lock, when no write is under way); returns them."""
        found = [p for p in self.path.rglob(".*.tmp") if p.is_file() and not p.is_symlink()]
        for p in found:
            p.unlink(missing_ok=True)
        return found

    def set_status(self, status: str, step: int, error: str | None = None) -> None:
        """Write ``status.json`` with this process's pid and host and the current time.

        Args:
            status: ``running``, ``done``, ``failed`` or ``interrupted``.
            step: the last step reached (optimiser updates).
            error: why the run failed or was interrupted, or None.
        """
        atomic.write_json(
            self.path / "status.json",
            {
                "status": status,
                "step": step,
                "error": error,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )

    def events(self) -> dict[str, Any]:
        """``events.json`` (onsets and phenomenon-specific findings), or ``{}`` if absent.

        Raises:
            StoreError: if the file exists but is unparsable.
        """
        f = self.path / "events.json"
        return self._read_json("events.json") if f.exists() else {}

    def write_events(self, events: dict[str, Any]) -> None:
        """Replace ``events.json`` with ``events`` (JSON-serialisable)."""
        atomic.write_json(self.path / "events.json", events)

    # ---- metrics ----------------------------------------------------------------------
    def metrics(self) -> pd.DataFrame:
        """``metrics.parquet`` as a tidy table (step, key, value); empty if not written yet.

        Raises:
            StoreError: if the file exists but cannot be read.
        """
        import pandas as pd

        f = self.path / "metrics.parquet"
        if not f.exists():
            return empty_metrics()
        try:
            return pd.read_parquet(f)
        except Exception as e:  # pyarrow raises several types on a bad file
            raise StoreError(f"{self.path}: corrupted metrics.parquet ({type(e).__name__})") from e

    def write_metrics(self, df: pd.DataFrame) -> None:
        """Replace ``metrics.parquet`` with the tidy table ``df``, sorted by step then key
        (stable) and reduced to the columns step, key, value."""
        df = df.sort_values(["step", "key"], kind="stable").reset_index(drop=True)
        atomic.write_parquet(self.path / "metrics.parquet", df[METRIC_COLUMNS])

    # ---- tables for the report -----------------------------------------------------------
    def write_table(self, name: str, df: pd.DataFrame) -> None:
        """Write ``tables/<name>.parquet`` (a phenomenon's finding, e.g. attention patterns)."""
        (self.path / "tables").mkdir(exist_ok=True)
        atomic.write_parquet(self.path / "tables" / f"{name}.parquet", df)

    def table(self, name: str) -> pd.DataFrame | None:
        """``tables/<name>.parquet``, or None if the run has no such table."""
        import pandas as pd

        f = self.path / "tables" / f"{name}.parquet"
        return pd.read_parquet(f) if f.exists() else None

    # ---- checkpoints ------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        """The run's ``checkpoints/`` folder (it may not exist yet)."""
        return self.path / "checkpoints"

    def checkpoint_steps(self) -> list[int]:
        """Steps that have a model checkpoint, ascending."""
        if not self.checkpoint_dir.exists():
            return []
        found = (_CKPT.match(f.name) for f in self.checkpoint_dir.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def checkpoint_path(self, step: int, kind: str = "step") -> Path:
        """``checkpoints/<kind>_<step:06d>.safetensors``; ``kind`` is ``step`` (weights) or
        ``optim_step`` (optimiser state)."""
        return self.checkpoint_dir / f"{kind}_{step:06d}.safetensors"

    def save_checkpoint(
        self, step: int, model_state: dict[str, torch.Tensor], optim_state: dict | None = None
    ) -> None:
        """Write the model weights at ``step``; with ``optim_state``, also the resume point
        (the optimiser file of older steps is then deleted)."""
        self.checkpoint_dir.mkdir(exist_ok=True)
        atomic.write_safetensors(self.checkpoint_path(step), model_state, {"step": str(step)})
        if optim_state is None:
            return
        tensors, meta = _flatten_optimizer(optim_state)
        atomic.write_safetensors(self.checkpoint_path(step, "optim_step"), tensors, meta)
        for f in self.checkpoint_dir.glob("optim_step_*.safetensors"):
            if f.name != self.checkpoint_path(step, "optim_step").name:
                f.unlink()

    def load_checkpoint(self, step: int) -> dict[str, torch.Tensor]:
        """The model weights after ``step`` updates, ``{name: tensor}`` on the CPU.

        Raises:
            StoreError: if the checkpoint is missing or cannot be read.
        """
        return self._load(self.checkpoint_path(step))

    def resume_point(self) -> tuple[int, dict[str, torch.Tensor], dict] | None:
        """The latest step with model and optimiser state, or None for a fresh run.

        Raises:
            StoreError: if the checkpoint files exist but cannot be read.
        """
        for f in sorted(self.checkpoint_dir.glob("optim_step_*.safetensors"), reverse=True):
            step = int(f.stem.split("_")[-1])
            if step in self.checkpoint_steps():
                tensors, meta = self._load(f, with_metadata=True)
                if "param_groups" not in meta:
                    raise StoreError(f"{f}: corrupted checkpoint (no optimiser metadata)")
                return step, self.load_checkpoint(step), _unflatten_optimizer(tensors, meta)
        return None

    def resume_problem(self) -> str | None:
        """What the run lacks to continue from a checkpoint (None if nothing): a
        ``checkpoints`` that is not a folder, no model checkpoint, or no optimiser state
        at a checkpointed step. Reads only file names."""
        if self.checkpoint_dir.exists() and not self.checkpoint_dir.is_dir():
            return "checkpoints is not a folder"
        steps = set(self.checkpoint_steps())
        if not steps:
            return "no checkpoints (checkpoints/step_*.safetensors)"
        optim = (_OPTIM.match(f.name) for f in self.checkpoint_dir.iterdir())
        if not steps & {int(m.group(1)) for m in optim if m}:
            return "no optimiser state (checkpoints/optim_step_*.safetensors)"
        return None

    def clear_training(self) -> None:
        """Delete what training and analysis wrote (checkpoints, metrics, events, signals,
        tables, report and figures), keeping config.json, env.json and status.json: the
        folder of a run about to start over from step 0.

        Raises:
            StoreError: if something cannot be deleted.
        """
        for name in _TRAINED:
            f = self.path / name
            try:
                if f.is_dir() and not f.is_symlink():
                    shutil.rmtree(f)
                elif f.exists() or f.is_symlink():
                    f.unlink()
            except OSError as e:
                raise StoreError(f"{f}: cannot delete ({e.strerror})") from None

    def _load(self, f: Path, with_metadata: bool = False) -> Any:
        from safetensors.torch import load_file

        try:
            if not with_metadata:
                return load_file(str(f))
            with safe_open(str(f), "pt") as h:
                meta = h.metadata() or {}
                tensors = {k: h.get_tensor(k) for k in h.keys()}
            return tensors, meta
        except (SafetensorError, OSError, ValueError) as e:
            raise StoreError(f"{f}: corrupted checkpoint ({e})") from e


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    import torch

    tensors = {
        f"state.{i}.{name}": (v if torch.is_tensor(v) else torch.tensor(v)).reshape(-1)
        for i, s in state["state"].items()
        for name, v in s.items()
    }
    return tensors, {"param_groups": json.dumps(state["param_groups"])}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> dict:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        _, i, name = key.split(".", 2)
        state.setdefault(int(i), {})[name] = v.reshape(()) if name == "step" else v
    return {"state": state, "param_groups": json.loads(meta["param_groups"])}


def create_run(root: str | Path, run_id: str, config: dict[str, Any], env: dict) -> RunDir:
    """Make ``root/run_id`` (a numeric suffix avoids clobbering) with config, env and status.

    Raises:
        StoreError: if ``root`` cannot be created or written.
    """
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        path, n = root / run_id, 1
        while path.exists():
            n += 1
            path = root / f"{run_id}-{n}"
        path.mkdir()
    except OSError as e:
        raise StoreError(
            f"--out {root}: not writable ({e.strerror}); allowed: a writable directory"
        ) from None
    run = RunDir(path)
    run.set_status("running", 0)  # first: a run cut short here is still a known run
    atomic.write_json(path / "env.json", env)
    atomic.write_json(path / "config.json", config)
    return run


def open_run(path: str | Path) -> RunDir:
    """An existing run; :class:`StoreError` if it is missing or its config is corrupted."""
    run = RunDir(path)
    if not run.path.is_dir():
        raise StoreError(f"{path}: no such run directory")
    run.config()
    run.status()
    return run


def create_run_at(path: str | Path, config: dict[str, Any], env: dict) -> RunDir:
    """Make the run directory ``path`` itself (a sweep member's deterministic name) with
    config, env and status; an existing folder without a readable ``config.json`` (a
    creation cut short) is completed in place.

    Raises:
        StoreError: if ``path`` cannot be created or written.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(
            f"{path}: not writable ({e.strerror}); allowed: a writable directory"
        ) from None
    run = RunDir(path)
    atomic.write_json(path / "env.json", env)
    run.set_status("running", 0)
    atomic.write_json(path / "config.json", config)  # last: its presence marks a complete run
    return run
