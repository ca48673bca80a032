"""Atomic file writes: write a temporary file in the same directory, fsync, rename.

A reader (or a run killed mid-write) sees either the old file or the new one, never a
partial file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads on the first checkpoint write; pandas comes with its frame
    import pandas as pd
    import torch


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield Path(tmp)
        # mkstemp creates 0600, and a writer may recreate the file (safetensors does): give
        # the written file the normal permissions of the umask, like every other file
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write(path: str | Path, writer: Callable[[Path], Any]) -> None:
    with atomic_path(path) as tmp:
        writer(tmp)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8 by the platform default of
    :meth:`pathlib.Path.write_text`).

    Raises:
        OSError: if the directory of ``path`` is missing or not writable.
    """
    _write(path, lambda t: t.write_text(text))


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON (keys in insertion order, trailing newline) atomically.

    Raises:
        TypeError: if ``data`` is not JSON-serialisable (nothing is written).
        OSError: if the directory of ``path`` is missing or not writable.
    """
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_parquet(path: str | Path, df: pd.DataFrame) -> None:
    """Write ``df`` to ``path`` as Parquet (without its index) atomically.

    Raises:
        OSError: if the directory of ``path`` is missing or not writable.
    """
    _write(path, lambda t: df.to_parquet(t, index=False))


def write_safetensors(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Write ``tensors`` (detached, contiguous, moved to the CPU) as safetensors atomically.

    Args:
        path: the file to write.
        tensors: name -> tensor of any shape and dtype.
        metadata: string key-value pairs stored in the file's header.

    Raises:
        OSError: if the directory of ``path`` is missing or not writable.
    """
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    from safetensors.torch import save_file

    _write(path, lambda t: save_file(tensors, str(t), metadata=metadata))


def write_dir(path: str | Path, writer: Callable[[Path], Any]) -> None:
    """Fill a temporary folder beside ``path`` with ``writer(tmp)``, then replace ``path``.

    On an exception the temporary folder is removed and ``path`` is left untouched.
    """
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        writer(tmp)
        old = path.with_name(f".{path.name}.old")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
