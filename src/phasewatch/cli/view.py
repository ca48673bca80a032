"""``phasewatch view DIR``: serve a directory of runs on localhost with its live runs page."""

from __future__ import annotations

import functools
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import typer

from phasewatch.errors import StoreError


class _Handler(SimpleHTTPRequestHandler):
    """Files under the served directory, plus ``runs.json`` regenerated per request."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        """``/runs.json`` from the store now, no favicon (204), anything else a file."""
        from phasewatch.report.runs_page import DATA, runs_json

        path = urlsplit(self.path).path
        if path == "/favicon.ico":
            self.send_response(HTTPStatus.NO_CONTENT)
            self.end_headers()
            return None
        if path != "/" + DATA:
            return super().do_GET()
        try:
            body = runs_json(self.directory)
        except StoreError:
            self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "run directory unreadable")
            return None
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)
        return None

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: no line per request."""


def make_server(root: str | Path, port: int = 0) -> ThreadingHTTPServer:
    """Write ``<root>/index.html`` and return a server of ``root`` on 127.0.0.1 (``port``
    0 = a free port; ``server.server_address[1]`` is the port); call ``serve_forever``.

    Raises:
        StoreError: if ``root`` is not a directory or cannot be written.
    """
    from phasewatch.report.runs_page import build_runs_page

    root = Path(root)
    build_runs_page(root)
    handler = functools.partial(_Handler, directory=str(root))
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
