"""Metrics from TensorBoard event files, read with TensorBoard's own ``EventAccumulator``
(``tensorboard.backend.event_processing.plugin_event_accumulator``; the optional extra
``phasewatch[import]``).

One run per directory holding event files (files named ``*tfevents*``, as TensorBoard
itself decides): a log directory with one such directory becomes the run directory
``--out``; with several, ``--out`` becomes a folder of runs named after their paths
relative to the log directory (``/`` → ``-``; the log directory's own files → ``root``).
``SummaryWriter.add_scalars`` writes each of its series into its own sub-directory, so
each becomes a run of its own.

Scalars are read both as written by ``torch.utils.tensorboard`` / TF1 (``simple_value``)
and by TF2 / Keras (scalar tensors): the accumulator migrates the former to the latter.
Tags become slash keys by :func:`~.rundir.metric_key` (``train/loss`` and ``Loss/train``
stay as they are, spaces become ``_``). When a writer restarted and logged steps again,
the accumulator keeps the later values (TensorBoard's "purge orphaned data").

Bad input exits 2 with one line naming the file and the problem, before anything is
written: every event file is first read record by record with TensorBoard's record reader
(length and CRC checks), so a truncated or corrupted file, or a file that is not a
TensorBoard event file, is refused rather than silently cut short; the same (step, tag)
twice, no scalar at all, or two tags with the same key are refused too. Non-finite values
are left out and counted in the summary line.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from phasewatch.errors import ConfigError, MissingDependency
from phasewatch.store.importers.rundir import (
    Imported,
    Series,
    check_duplicates,
    finite_rows,
    key_map,
    write_runs,
)

INSTALL = "pip install 'phasewatch[import]'"


def _tensorboard():
    """The tensorboard package (the ``import`` extra).

    Raises:
        MissingDependency: naming the pip command if it is not installed.
    """
    try:
        import tensorboard
    except ImportError:
        raise MissingDependency(
            f"importing TensorBoard logs needs tensorboard: {INSTALL}"
        ) from None
    return tensorboard


def is_event_file(path: Path) -> bool:
    """TensorBoard's own rule: a file whose name contains ``tfevents``."""
    return path.is_file() and "tfevents" in path.name


def find_runs(logdir: str | Path) -> dict[str, Path]:
    """``{run name: directory}`` of every directory under ``logdir`` holding event files
    (module docstring for the names; a single run is named ``""``).

    Raises:
        ConfigError: if ``logdir`` is missing or holds no event file, or two run names
            collide.
    """
    logdir = Path(logdir)
    if not logdir.exists():
        raise ConfigError(f"{logdir}: no such directory; allowed: a TensorBoard log directory")
    if logdir.is_file():
        return {"": logdir}
    dirs = sorted({f.parent for f in logdir.rglob("*tfevents*") if is_event_file(f)})
    if not dirs:
        raise ConfigError(f"{logdir}: no TensorBoard event files (files named *tfevents*) under it")
    if len(dirs) == 1:
        return {"": dirs[0]}
    names: dict[str, Path] = {}
    for d in dirs:
        name = "-".join(d.relative_to(logdir).parts) or "root"
        if name in names:
            raise ConfigError(
                f"{logdir}: run directories {names[name]} and {d} would both be named {name!r}"
            )
        names[name] = d
    return names


def check_event_file(file: Path) -> int:
    """Read every record of ``file`` with TensorBoard's record reader (lengths and CRCs);
    return the number of records.

    Raises:
        ConfigError: naming ``file`` if it is not a TensorBoard event file (its first
            record is not an ``Event`` with a ``brain.Event`` file version) or is truncated
            or corrupted (the byte offset of the first bad record).
    """
    _tensorboard()
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto import event_pb2
    from tensorboard.compat.tensorflow_stub import errors
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New

    reader = PyRecordReader_New(str(file))
    records, offset = 0, 0
    try:
        while True:
            try:
                reader.GetNext()
            except errors.OutOfRangeError:
                break
            except errors.DataLossError as e:
                what = "not a TensorBoard event file" if records == 0 else "truncated or corrupted"
                reason = str(e.message).replace(str(file), "").strip()
                raise ConfigError(
                    f"{file}: {what} (bad record at byte {offset}: {reason})"
                ) from None
            record = reader.record()
            if records == 0:
                try:
                    version = event_pb2.Event.FromString(record).file_version
                except DecodeError:
                    version = ""
                if not version.startswith("brain.Event:"):
                    raise ConfigError(
                        f"{file}: not a TensorBoard event file (no brain.Event file version)"
                    )
            records += 1
            offset += len(record) + 16  # length (8), its CRC (4), data, data CRC (4)
    finally:
        reader.file_handle.close()
    if records == 0:
        raise ConfigError(f"{file}: empty; not a TensorBoard event file")
    return records


def _scalars(path: Path) -> list[tuple[int, str, float]]:
    """``(step, tag, value)`` of every scalar in the event files of ``path`` (a directory
    or one event file), by TensorBoard's EventAccumulator keeping every event."""
    from tensorboard.backend.event_processing import plugin_event_accumulator as pea
    from tensorboard.util import tensor_util

    acc = pea.EventAccumulator(str(path), size_guidance={pea.TENSORS: 0})
    acc.Reload()
    rows = []
    for tag in acc.Tags()["tensors"]:
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            continue
        for ev in acc.Tensors(tag):
            rows.append((int(ev.step), tag, float(tensor_util.make_ndarray(ev.tensor_proto))))
    return rows


def read_tensorboard(path: str | Path) -> Series:
    """The scalars of one TensorBoard run (a directory of event files, or one event file).

    Raises:
        ConfigError: one line naming the file and the problem (module docstring).
        MissingDependency: if tensorboard is not installed.
    """
    tb = _tensorboard()
    path = Path(path)
    files = [path] if path.is_file() else sorted(f for f in path.iterdir() if is_event_file(f))
    for f in files:
        check_event_file(f)
    rows = _scalars(path)
    if not rows:
        raise ConfigError(
            f"{path}: no scalars in its event files ({', '.join(f.name for f in files)})"
        )
    names = key_map(dict.fromkeys(r[1] for r in rows), path)
    rows = [(s, names[t], v) for s, t, v in rows]
    check_duplicates(pd.DataFrame(rows, columns=["step", "key", "value"]), path)
    metrics, skipped = finite_rows(rows)
    if metrics.empty:
        raise ConfigError(f"{path}: no finite scalar value")
    task = {
        "source": str(path.resolve()),
        "format": "tensorboard",
        "event_files": [f.name for f in files],
        "renamed": {k: v for k, v in names.items() if k != v},
    }
    return Series(
        metrics, "tensorboard", task, skipped, {"reader": f"tensorboard {tb.__version__}"}
    )


def import_tensorboard(
    logdir: str | Path,
    out: str | Path,
    *,
    onsets: dict[str, int] | None = None,
    replace: bool = False,
) -> list[Imported]:
    """Import every run of a TensorBoard log directory (module docstring).

    Args:
        logdir: a log directory (or one event file).
        out: the run directory (one run) or folder of runs (several) to create.
        onsets: known onsets ``{name: step}`` written to each run's events.json.
        replace: overwrite ``out`` if it exists.

    Returns:
        One :class:`~.rundir.Imported` per run, in the order of their directories.

    Raises:
        ConfigError: on bad input (nothing is written).
        StoreError: if ``out`` exists (without ``replace``) or is not writable.
        MissingDependency: if tensorboard is not installed.
    """
    runs = {name: read_tensorboard(d) for name, d in find_runs(logdir).items()}
    return write_runs(out, runs, onsets=onsets, replace=replace)
