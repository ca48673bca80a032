"""Commands imported on first use, so that ``phasewatch --help`` starts at once.

Every command of ``phasewatch`` is registered here by a loader and its one-line help (the
first paragraph of its own help; ``tests/unit/test_cli_start.py`` checks that they agree).
The group's own help page lists them with that line and imports nothing; invoking one (or
its ``--help``) calls its loader once, which imports its module only (``run <phenomenon>``
also imports the phenomena, ``measure``/``calibrate`` :mod:`phasewatch.signals`). The rule
for every module of ``phasewatch.cli``: no torch, plotly, pandas, inspect_ai, ray,
transformers or ``http.server`` import at module level (``tests/unit/test_cli_start.py``
checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class Lazy:
    """A command built on first use.

    Attributes:
        load: returns the click command (``typer.main.get_command`` of a one-command
            Typer, or ``typer.main.get_group``).
        help: the line shown for it in the group's help (the command's own first
            paragraph; ``test_cli_start`` checks that they agree).
    """

    load: Callable[[], Any]
    help: str


def command(name: str, fn: Callable, **settings: Any) -> Any:
    """The click command of typer function ``fn`` named ``name`` (``settings`` as for
    ``Typer.command``, e.g. ``context_settings``)."""
    one = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    one.command(name, **settings)(fn)
    cmd = typer.main.get_command(one)
    cmd.name = name
    return cmd


class LazyGroup(TyperGroup):
    """A typer group with commands of :attr:`lazy` imported on first use (help pages of
    the group itself show their :attr:`Lazy.help` line instead)."""

    lazy: dict[str, Lazy] = {}
    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        """The lazy commands (registration order), then the others."""
        return [*self.lazy, *(n for n in super().list_commands(ctx) if n not in self.lazy)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The command ``cmd_name``, loading it if lazy (a stub while listing help)."""
        if cmd_name in self.commands or cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        if self._listing:
            return TyperCommand(cmd_name, help=self.lazy[cmd_name].help)
        cmd = self.lazy[cmd_name].load()
        cmd.name = cmd_name
        self.commands[cmd_name] = cmd
        return cmd

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """The group's help page, listing lazy commands without importing them."""
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False
