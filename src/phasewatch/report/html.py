"""The self-contained ``report.html`` (plotly inlined, no network) and PNG figures."""

from __future__ import annotations

import html
import json
from pathlib import Path

from plotly.offline import get_plotlyjs

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
"""


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def build_report(run: RunDir) -> Path:
    """Write ``report.html`` and ``figures/*.png`` for ``run`` from its store; return the path.

    Raises:
        StoreError: if the run's files are missing or corrupted.
    """
    cfg, status, events = run.config(), run.status(), run.events()
    metrics = run.metrics()
    onsets = events.get("onsets", {})
    title = f"{cfg['phenomenon']} · {cfg.get('preset')} · seed {cfg['train'].get('seed')}"
    parts = [
        f"<h1>phasewatch report: {html.escape(title)}</h1>",
        f"<p class='summary'>{html.escape(summarise(events, status))}</p>",
    ]
    if not metrics.empty:
        for fig in (curves_figure(metrics, onsets), *heatmap_figures(metrics)):
            parts.append(figure_html(fig))
        save_pngs(metrics, onsets, run.path / "figures")
    for builder in sections_for(cfg["phenomenon"]):
        parts += builder(run)
    onset_rows = [
        (
            name,
            f"{ev['step']:,}" if ev.get("step") is not None else "never",
        )
        for name, ev in onsets.items()
    ]
    rules = [(name, ev.get("rule", "")) for name, ev in onsets.items()]
    parts += [
        "<h2>Onsets</h2>",
        _table([(n, f"{s} ({r})") for (n, s), (_, r) in zip(onset_rows, rules)]),
        "<h2>Run</h2>",
        _table(
            [
                ("run", run.id),
                ("status", str(status.get("status"))),
                ("last step", str(status.get("step"))),
            ]
        ),
        "<h2>Config</h2>",
        f"<pre>{html.escape(json.dumps(cfg, indent=2))}</pre>",
        "<h2>Environment</h2>",
        f"<pre>{html.escape(json.dumps(run.env(), indent=2))}</pre>",
    ]
    path = run.path / "report.html"
    write_text(path, page(title, parts))
    return path


def page(title: str, parts: list[str]) -> str:
    """A self-contained HTML page (plotly.js inlined in the head) from body fragments."""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head>"
        f"<body>{''.join(parts)}</body></html>"
    )
