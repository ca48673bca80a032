"""Phenomenon-specific report sections, built from the store only.

A module under ``report/`` registers a builder for a phenomenon name; the builder reads
the run (metrics, events, ``tables/*.parquet``) and returns HTML fragments. Figures
use :func:`figure_html` (plotly.js is inlined once in the page head).
"""

from __future__ import annotations

from collections.abc import Callable

import plotly.graph_objects as go

from phasewatch.store import RunDir

SectionBuilder = Callable[[RunDir], list[str]]
_SECTIONS: dict[str, list[SectionBuilder]] = {}


def section(phenomenon: str) -> Callable[[SectionBuilder], SectionBuilder]:
    """Decorator: register ``builder(run) -> [html, ...]`` for runs of ``phenomenon``
    (``"*"``: every run, e.g. the developmental-signals section)."""

    def register(builder: SectionBuilder) -> SectionBuilder:
        """Append ``builder`` to the sections of ``phenomenon`` and return it unchanged."""
        _SECTIONS.setdefault(phenomenon, []).append(builder)
        return builder

    return register


def sections_for(phenomenon: str) -> list[SectionBuilder]:
    """The phenomenon's own sections, then those registered for every run."""
    return [*_SECTIONS.get(phenomenon, []), *_SECTIONS.get("*", [])]


def figure_html(fig: go.Figure) -> str:
    """A plotly figure as an HTML fragment (no plotly.js: the page head has it)."""
    return fig.to_html(full_html=False, include_plotlyjs=False)
