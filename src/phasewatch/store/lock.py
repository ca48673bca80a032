"""OS file locks on run and sweep folders: released by the kernel when the process ends,
kill -9 included, so a lock is never left behind."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from phasewatch.errors import ConfigError, StoreError

RUN_LOCK = ".run.lock"
SWEEP_LOCK = ".sweep.lock"


@contextlib.contextmanager
def file_lock(f: Path, busy: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on file ``f`` (created if missing) for the block.

    Args:
        f: the lock file.
        busy: the :class:`ConfigError` message when another process holds it.

    Raises:
        ConfigError: ``busy``, if another process (or another lock in this one) holds it.
        StoreError: if the lock file cannot be created.
    """
    try:
        fh = open(f, "a")  # noqa: SIM115 (held for the whole block)
    except OSError as e:
        raise StoreError(f"{f}: cannot create the lock ({e.strerror})") from None
    try:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # no fcntl (Windows): no lock
            pass
        except OSError:
            raise ConfigError(busy) from None
        yield
    finally:
        fh.close()


def run_lock(path: str | Path) -> contextlib.AbstractContextManager[None]:
    """Hold ``<run>/.run.lock`` while training the run, as sweeps lock their folder.

    Raises:
        ConfigError: if another process is training the run.
        StoreError: if the lock file cannot be created.
    """
    busy = (
        f"{path}: another phasewatch process is training this run; allowed: wait for it to "
        "finish (phasewatch runs ls shows its status)"
    )
    return file_lock(Path(path) / RUN_LOCK, busy)


def sweep_lock(out: Path) -> contextlib.AbstractContextManager[None]:
    """Hold ``<out>/.sweep.lock`` (creating ``out``) while sweeping into it.

    Raises:
        ConfigError: if another process sweeps into ``out``.
        StoreError: if ``out`` cannot be created.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(
            f"--out {out}: not writable ({e.strerror}); allowed: a writable directory"
        ) from None
    busy = f"{out}: another phasewatch sweep is running on it; allowed: wait for it"
    return file_lock(out / SWEEP_LOCK, busy)
