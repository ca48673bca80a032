"""Figures and the HTML report, built only from the run store."""

from phasewatch.report.html import build_report

# Importing a section module registers its report section.
from phasewatch.report import detect  # noqa: E402,F401  isort: skip
from phasewatch.report import base64  # noqa: E402,F401  isort: skip
from phasewatch.report import induction  # noqa: E402,F401  isort: skip
from phasewatch.report import signals  # noqa: E402,F401  isort: skip
from phasewatch.report import superposition  # noqa: E402,F401  isort: skip
from phasewatch.report import watch  # noqa: E402,F401  isort: skip

__all__ = ["build_report"]
