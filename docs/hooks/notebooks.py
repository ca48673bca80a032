"""MkDocs hook: publish the example notebooks (``examples/notebooks/*.ipynb``) as
``notebooks/<name>.ipynb`` pages, rendered by mkdocs-jupyter with the outputs stored in
them (``make notebooks`` executes them and stores fresh outputs).

Runs before mkdocs-jupyter's own ``on_files`` (higher priority), so that the plugin sees
the added files and converts them.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

NOTEBOOKS = Path(__file__).resolve().parents[2] / "examples" / "notebooks"


@event_priority(100)
def on_files(files: Files, config) -> Files:
    """Add every notebook of examples/notebooks/ under ``notebooks/`` in the site."""
    for nb in sorted(NOTEBOOKS.glob("*.ipynb")):
        files.append(
            File(
                f"notebooks/{nb.name}",
                src_dir=str(NOTEBOOKS.parent),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files
