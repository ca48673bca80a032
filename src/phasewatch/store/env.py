"""What ``env.json`` records: versions, git hash, CPU and threads of the machine."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_hash() -> str | None:
    src = Path(__file__).resolve().parents[1]  # the phasewatch package
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def describe(device: str, threads: int | None = None) -> dict[str, Any]:
    """A JSON-ready description of the software and hardware a run uses.

    Args:
        device: the torch device the run trains on.
        threads: the torch thread count the run trains with (``TrainConfig.num_threads``);
            None = this process's current count.
    """
    import numpy
    import torch

    return {
        "phasewatch": _version(),
        "git_hash": _git_hash(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads() if threads is None else threads,
        "device": device,
        "cuda": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
    }


def _version() -> str:
    """The installed phasewatch version (package metadata; ``unknown`` if not installed)."""
    try:
        return importlib.metadata.version("phasewatch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
