"""Figures and the HTML report, built only from the run store."""

from phasewatch.report import sections  # noqa: F401  (registers every report section)
from phasewatch.report.html import build_report

__all__ = ["build_report"]
