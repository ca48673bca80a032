"""The one progress bar of phasewatch (training, batched training, sweeps, measuring).

Every long loop shows the same columns, left to right: the description, the bar, done/total
(``M/N``), elapsed time, ``ETA`` and the time remaining, then an optional ``info`` text (the
latest metrics, or how many sweep members are done and failed). When the line is wider
than the terminal, the info text and the bar (at most :data:`BAR_WIDTH` wide) shrink
first, so at 80 columns a description of up to ~45 characters is shown whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

T = TypeVar("T")

BAR_WIDTH = 40  # characters at most; narrower when the line would not fit the terminal


class _InfoColumn(ProgressColumn):
    """The task's ``info`` field (empty if the task has none), cut with … when too long.

    The column may shrink (it is not ``no_wrap``) but its text never wraps onto a second
    line, so a long info text gives way before the description does.
    """

    def render(self, task: Task) -> Text:
        """The ``info`` text of ``task`` on one line."""
        return Text(str(task.fields.get("info", "")), no_wrap=True, overflow="ellipsis")


def progress_bar(enabled: bool = True) -> Progress:
    """A progress display with phasewatch's columns; use it as a context manager.

    Add a task with ``bar.add_task(description, total=N)`` (optionally ``completed=`` to
    resume and ``info=`` for a trailing text) and move it with ``bar.advance(task_id)`` or
    ``bar.update(task_id, advance=k, info=...)``.

    Args:
        enabled: False gives a silent display (same methods, nothing printed).

    Returns:
        A :class:`rich.progress.Progress` that stays on screen when it ends.
    """
    return Progress(
        TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True, min_width=8)),
        BarColumn(bar_width=None, table_column=Column(max_width=BAR_WIDTH)),
        MofNCompleteColumn(table_column=Column(no_wrap=True)),
        TimeElapsedColumn(table_column=Column(no_wrap=True)),
        TextColumn("ETA", table_column=Column(no_wrap=True)),
        TimeRemainingColumn(table_column=Column(no_wrap=True)),
        _InfoColumn(),
        disable=not enabled,
        transient=False,
    )


def track(
    items: Iterable[T], description: str, *, total: int | None = None, enabled: bool = True
) -> Iterator[T]:
    """Yield ``items`` while a :func:`progress_bar` counts them.

    Args:
        items: what to iterate over.
        description: the bar's label.
        total: the number of items (default: ``len(items)`` if it has one).
        enabled: False iterates without a bar.
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress_bar(enabled) as bar:
        task_id = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task_id)
