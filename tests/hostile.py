"""Hostile run folders shared by the hardening and fuzz tests (importable: pytest puts
``tests/`` on ``sys.path`` through ``tests/conftest.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file


def hostile_watched_run(path: Path) -> Path:
    """The issue's attack: a watched run whose recorded factory is ``os:system`` with
    ``touch PWNED`` as its argument; returns ``path``."""
    (path / "checkpoints").mkdir(parents=True)
    (path / "watch").mkdir()
    task = {"factory": "os:system", "factory_kwargs": {"command": "touch PWNED"}}
    cfg = {"phenomenon": "watch", "preset": None, "task": task, "train": {"steps": 1}}
    (path / "config.json").write_text(json.dumps(cfg))
    (path / "status.json").write_text(json.dumps({"status": "done", "step": 1}))
    (path / "env.json").write_text("{}")
    save_file({"w": torch.zeros(1)}, str(path / "checkpoints" / "step_000000.safetensors"))
    save_file({"t0": torch.zeros(2)}, str(path / "watch" / "probe.safetensors"))
    return path
