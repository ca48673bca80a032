"""One error policy for every CLI module: phasewatch's own errors become one line on stderr
and exit code 2 (1 if a run failed); anything else is a bug and keeps its traceback."""

from __future__ import annotations

import functools

import typer

from phasewatch.errors import PhasewatchError, RunFailed


def fail(e: PhasewatchError) -> typer.Exit:
    """Print ``e`` as one line on stderr; the Exit to raise (1 for RunFailed, else 2)."""
    typer.echo(f"error: {e}", err=True)
    return typer.Exit(1 if isinstance(e, RunFailed) else 2)


def handle_errors(fn):
    """Decorator: :class:`PhasewatchError` raised by ``fn`` → :func:`fail`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        """``fn(*args, **kwargs)``; a :class:`PhasewatchError` becomes a one-line exit."""
        try:
            return fn(*args, **kwargs)
        except PhasewatchError as e:
            raise fail(e) from None

    return wrapper
