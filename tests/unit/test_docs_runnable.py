"""The blocks the README and the docs mark as runnable (a ``<!-- runnable -->`` line right
before a fenced ``bash`` or ``python`` block) run exactly as printed, in a fresh folder,
and exit 0. The Watcher example (docs/watcher.md) runs in the default suite; the shell
tours run in CI's docs step (``make docs-test``, marker ``docs``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MARKED = re.compile(r"^<!-- runnable -->\n```(bash|python)\n(.*?)^```", re.S | re.M)
BIN = Path(sys.executable).parent


def runnable_blocks() -> list[tuple[str, str, str]]:
    """(page, language, body) of every block marked runnable."""
    return [
        (str(page.relative_to(ROOT)), m[1], m[2])
        for page in PAGES
        for m in MARKED.finditer(page.read_text())
    ]


def run_block(lang: str, body: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run a block as printed: python blocks with this interpreter, bash blocks with
    ``bash -e`` and this environment's ``bin/`` first on PATH (where ``phasewatch`` is)."""
    env = os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env |= {"OMP_NUM_THREADS": "1", "MPLBACKEND": "agg"}
    cmd = [sys.executable, "-c", body] if lang == "python" else ["bash", "-e", "-c", body]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)


BLOCKS = runnable_blocks()
CASES = [
    pytest.param(
        lang,
        body,
        id=f"{page}:{i}",
        marks=[] if page == "docs/watcher.md" else [pytest.mark.docs],
    )
    for i, (page, lang, body) in enumerate(BLOCKS)
]


def test_the_watcher_example_and_a_shell_tour_are_marked_runnable():
    pages = {page for page, _, _ in BLOCKS}
    assert {"docs/watcher.md", "docs/getting-started.md"} <= pages
    watcher = next(body for page, _, body in BLOCKS if page == "docs/watcher.md")
    assert "Watcher(" in watcher and "watch.close()" in watcher and "..." not in watcher


@pytest.mark.parametrize("lang, body", CASES)
def test_runnable_block_runs_as_printed(lang, body, tmp_path):
    r = run_block(lang, body, tmp_path)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    if "Watcher(" in body:  # the example wrote a complete run folder
        run = tmp_path / "runs" / "my-run"
        for name in ("config.json", "metrics.parquet", "signals.parquet", "events.json"):
            assert (run / name).is_file(), name
