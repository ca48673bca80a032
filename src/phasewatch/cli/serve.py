"""The HTTP handler of ``phasewatch view`` (:mod:`phasewatch.cli.view`).

It subclasses :class:`http.server.SimpleHTTPRequestHandler`, so it lives apart from the
command: :func:`phasewatch.cli.view.make_server` imports this module when it serves, and
``phasewatch --help`` or ``runs ls`` never load :mod:`http.server` (which pulls in
``http.client``, ``email`` and ``ssl``).
"""

from __future__ import annotations

from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler
from urllib.parse import urlsplit

from phasewatch.errors import StoreError
from phasewatch.report.runs_page import DATA, runs_json


class RunsHandler(SimpleHTTPRequestHandler):
    """Files under the served directory, plus ``runs.json`` regenerated per request."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        """``/runs.json`` from the store now, no favicon (204), anything else a file."""
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
