"""The report: self-contained HTML rendered by headless Chromium, PNGs, summary text."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from phasewatch import api
from phasewatch.report.summary import summarise

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_summary_paragraph_states_delay_and_key_frequencies():
    events = {
        "onsets": {
            "memorisation": {"step": 100},
            "generalisation": {"step": 1650},
            "test_loss_peak": {"step": 150},
        },
        "key_frequencies": [4, 17, 32],
    }
    text = summarise(events, {"status": "done", "step": 3000})
    assert text.startswith("Memorised (train accuracy ≥ 0.99) at step 100;")
    assert "generalised (test accuracy ≥ 0.99) at step 1,650: a 16.5× delay" in text
    assert "test loss peaked at step 150" in text
    assert text.endswith("Key frequencies of the final model: {4, 17, 32}.")
    noted = summarise({"onsets": {}, "notes": ["m >= n: no superposition expected."]}, {})
    assert noted.endswith("No onsets detected yet. m >= n: no superposition expected.")
    never = summarise({"onsets": {"generalisation": {"step": None}}}, {"step": 40})
    assert never.startswith("Did not generalise (test accuracy ≥ 0.99) within 40 steps")


def test_report_renders_in_headless_chromium(tmp_path, tiny):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run must install it")
        pytest.skip("chromium not installed")
    rd = api.run("grokking", "quick", tiny, out=tmp_path, progress=False)
    html = (rd.path / "report.html").read_text()
    assert "<script src=" not in html  # plotly is inlined: the file works offline
    assert "Memorised" in html or "Did not memorise" in html
    assert (rd.path / "figures" / "curves.png").stat().st_size > 10_000
    assert (rd.path / "figures" / "fourier_embed_norm.png").exists()
    dom = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            "--virtual-time-budget=15000",
            f"file://{rd.path / 'report.html'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    # plotly draws each figure into an <svg class="main-svg">; traces become <path>s
    assert len(re.findall(r'class="main-svg"', dom)) >= 4
    assert "test/acc" in dom and "fourier/embed_norm" in dom


def test_large_indexed_families_are_thinned_in_the_interactive_heatmap():
    import pandas as pd

    from phasewatch.report.figures import MAX_HEATMAP_ROWS, heatmap_figures

    rows = [(s, f"dim/{i}", i + s / 10) for s in (1, 2, 3) for i in range(1000)]
    rows += [(s, f"fourier/embed_norm/{k}", 1.0) for s in (1, 2, 3) for k in range(5)]
    metrics = pd.DataFrame(rows, columns=["step", "key", "value"])
    figs = {f.layout.title.text: f for f in heatmap_figures(metrics)}
    assert set(figs) == {f"dim ({MAX_HEATMAP_ROWS} of 1000)", "fourier/embed_norm"}
    dim = figs[f"dim ({MAX_HEATMAP_ROWS} of 1000)"].data[0]
    ys = list(dim.y)
    assert len(ys) == MAX_HEATMAP_ROWS and ys[0] == 0 and ys[-1] == 999
    assert ys == sorted(set(ys))
    # the rows shown carry their own values: row i at step s is i + s / 10
    z = dim.z
    assert abs(float(z[10][2]) - (ys[10] + 0.3)) < 1e-3
    assert len(figs["fourier/embed_norm"].data[0].y) == 5
