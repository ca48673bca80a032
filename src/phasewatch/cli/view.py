"""``phasewatch view DIR``: serve a directory of runs on localhost with its live runs page.

The HTTP handler is in :mod:`phasewatch.cli.serve`, imported only when the command serves.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from phasewatch.errors import StoreError

if TYPE_CHECKING:  # http.server loads when the command serves (phasewatch.cli.serve)
    from http.server import ThreadingHTTPServer


def make_server(root: str | Path, port: int = 0) -> ThreadingHTTPServer:
    """Write ``<root>/index.html`` and return a server of ``root`` on 127.0.0.1 (``port``
    0 = a free port; ``server.server_address[1]`` is the port); call ``serve_forever``.

    Raises:
        StoreError: if ``root`` is not a directory or cannot be written.
    """
    from http.server import ThreadingHTTPServer

    from phasewatch.cli.serve import RunsHandler
    from phasewatch.report.runs_page import build_runs_page

    root = Path(root)
    build_runs_page(root)
    handler = functools.partial(RunsHandler, directory=str(root))
    try:
        return ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as e:
        raise StoreError(
            f"--port {port}: cannot listen ({e.strerror}); allowed: a free port"
        ) from None


def view(
    root: Path = typer.Argument(Path("runs"), help="A directory of runs (searched recursively)."),
    port: int = typer.Option(0, help="Port on 127.0.0.1 (0 = any free port)."),
) -> None:
    """Serve ROOT's runs page (index.html) on localhost and print its URL; the page redraws
    as runs train (it polls runs.json, rebuilt from the store on each request). Ctrl-C
    stops."""
    from phasewatch.report.runs_page import INDEX

    server = make_server(root, port)
    typer.echo(f"http://127.0.0.1:{server.server_address[1]}/{INDEX}", color=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
