"""The self-contained ``report.html`` (plotly inlined, no network) and PNG figures."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path

from plotly.offline import get_plotlyjs

from phasewatch.errors import StoreError
from phasewatch.report.figures import curves_figure, heatmap_figures, save_pngs
from phasewatch.report.registry import figure_html, sections_for
from phasewatch.report.summary import summarise
from phasewatch.store import RunDir
from phasewatch.store.atomic import write_text

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em} .summary{font-size:1.1em;line-height:1.5;background:#f4f6fa;padding:1em;
border-radius:6px} table{border-collapse:collapse;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left} code{font-size:.9em}
.broken{background:#fdecea;border:1px solid #e0a0a0;padding:.5em 1em;border-radius:4px;margin:1em 0}
"""


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _json(data: object) -> str:
    """``data`` as indented JSON, HTML-escaped."""
    return html.escape(json.dumps(data, indent=2, default=str))


def _mapping(value: object) -> dict:
    """``value`` if it is a dict, else ``{}`` (a damaged ``status.json``/``events.json``)."""
    return value if isinstance(value, dict) else {}


def _box(name: str, e: Exception) -> str:
    """A one-line box: section ``name`` could not be drawn, and why (``e``'s first line)."""
    reason = (str(e).strip().splitlines() or [""])[0] or type(e).__name__
    return (
        f"<div class='broken'>{html.escape(name)}: could not draw this section: "
        f"{html.escape(reason)}</div>"
    )


def _guarded(name: str, draw: Callable[[], list[str]]) -> list[str]:
    """The HTML fragments ``draw()`` returns, or, if it raises, :func:`_box` saying why the
    section ``name`` could not be drawn (a damaged or early-failed run still gets a page)."""
    try:
        return draw()
    except Exception as e:  # noqa: BLE001 - any failure of one section must not lose the page
        return [_box(name, e)]


def _load(name: str, read: Callable[[], dict]) -> tuple[dict, list[str]]:
    """``(read(), [])``, or ``({}, [box])`` if the file is missing or damaged."""
    try:
        return _mapping(read()), []
    except StoreError as e:
        return {}, [_box(name, e)]


def _curves(run: RunDir, onsets: dict) -> list[str]:
    """The metric curves and heatmaps, and their PNGs in ``figures/``."""
    metrics = run.metrics()
    if metrics.empty:
        return []
    parts = [figure_html(f) for f in (curves_figure(metrics, onsets), *heatmap_figures(metrics))]
    save_pngs(metrics, onsets, run.path / "figures")
    return parts


def _onsets(onsets: dict) -> list[str]:
    """The onsets table: name, step (or never) and the rule that defines it."""
    rows = [
        (name, f"{ev['step']:,}" if ev.get("step") is not None else "never", ev.get("rule", ""))
        for name, ev in onsets.items()
    ]
    return ["<h2>Onsets</h2>", _table([(n, f"{s} ({r})") for n, s, r in rows])]


def build_report(run: RunDir) -> Path:
    """Write ``report.html`` and ``figures/*.png`` for ``run`` from its store; return the path.

    A section that cannot be drawn (e.g. figures of a run that failed early, a damaged
    table) is replaced by a one-line box saying why; the rest of the page is written.

    Raises:
        StoreError: if the run's config is missing or corrupted, or ``report.html`` cannot
            be written (the message gives the path).
    """
    cfg = run.config()
    status, broken = _load("status.json", run.status)
    events, broken_events = _load("events.json", run.events)
    onsets = _mapping(events.get("onsets"))
    seed = _mapping(cfg.get("train")).get("seed")
    title = f"{cfg.get('phenomenon')} · {cfg.get('preset')} · seed {seed}"
    summary = _guarded(
        "summary", lambda: [f"<p class='summary'>{html.escape(summarise(events, status))}</p>"]
    )
    parts = [
        f"<h1>phasewatch report: {html.escape(title)}</h1>",
        *broken,
        *broken_events,
        *summary,
        *_guarded("curves", lambda: _curves(run, onsets)),
    ]
    for builder in sections_for(str(cfg.get("phenomenon"))):
        parts += _guarded(getattr(builder, "__name__", "section"), lambda b=builder: b(run))
    run_rows = [("run", run.id), ("status", str(status.get("status")))]
    parts += [
        *_guarded("onsets", lambda: _onsets(onsets)),
        "<h2>Run</h2>",
        _table([*run_rows, ("last step", str(status.get("step")))]),
        "<h2>Config</h2>",
        f"<pre>{_json(cfg)}</pre>",
        "<h2>Environment</h2>",
        *_guarded("environment", lambda: [f"<pre>{_json(run.env())}</pre>"]),
    ]
    path = run.path / "report.html"
    try:
        write_text(path, page(title, parts))
    except OSError as e:
        raise StoreError(
            f"{path}: cannot write the report ({e.strerror or e}); allowed: a writable run folder"
        ) from None
    return path


def page(title: str, parts: list[str]) -> str:
    """A self-contained HTML page (plotly.js inlined in the head) from body fragments."""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head>"
        f"<body>{''.join(parts)}</body></html>"
    )
