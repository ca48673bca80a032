"""MkDocs hook: the CLI reference page (``reference/cli.md``), rendered at build time
from the typer app with typer's own Markdown generator, so it never drifts from the
commands: every command, argument and option with its help and default."""

from __future__ import annotations

import typer.main
from mkdocs.structure.files import File, Files
from typer.cli import get_docs_for_click

INTRO = """\
Every command of `phasewatch`, generated from the command-line app itself
(`phasewatch.cli.app`) each time the site is built; `phasewatch COMMAND --help` prints the
same in a terminal. The flags of `phasewatch run <phenomenon>` are the fields of the
phenomenon's config dataclass and of `TrainConfig`; bad input exits with code 2 and one
line naming the field and the allowed values.

"""


def render() -> str:
    """The CLI reference as Markdown (``# phasewatch`` then one section per command)."""
    from phasewatch.cli.app import app

    command = typer.main.get_command(app)
    ctx = typer.Context(command, info_name="phasewatch")
    body = get_docs_for_click(obj=command, ctx=ctx, name="phasewatch", title="CLI reference")
    title, _, rest = body.partition("\n")
    return f"{title}\n\n{INTRO}{rest.lstrip()}"


def on_files(files: Files, config) -> Files:
    """Add the generated ``reference/cli.md``."""
    files.append(File.generated(config, "reference/cli.md", content=render()))
    return files
