"""Report section of a watched run (``phasewatch.Watcher``): signals and their cadence,
the Watcher's overhead, disabled signals, problems, and the early warnings as they fired
during training. Built from the ``watch`` block of events.json only."""

from __future__ import annotations

import html

import pandas as pd

from phasewatch.report.registry import section
from phasewatch.store import RunDir


@section("watch")
def watch_section(run: RunDir) -> list[str]:
    """HTML parts of the section: signals and cadence, overhead, disabled signals, problems,
    early warnings; none for a run without a ``watch`` block (not a watched run).

    Args:
        run: the run directory (only its events.json is read).
    """
    block = run.events().get("watch")
    if not block:
        return []
    o = block["overhead"]
    sig = pd.DataFrame(
        [
            {"signal": n, "every (steps)": v["every"], "where": v["where"]}
            for n, v in block["signals"].items()
        ]
    )
    parts = [
        "<h2>Watched training run</h2>",
        f"<p>Watcher overhead: {o['loop_seconds']:.2f} s inside the training loop, "
        f"{o['percent_of_step_time']:.2f}% of the loop's own time ({o['user_seconds']:.1f} s); "
        f"{o['setup_seconds'] + o['close_seconds']:.2f} s to set up and close; background "
        f"thread: {o.get('background_seconds', 0.0):.1f} s beside training. "
        f"Last step {block['last_step']}.</p>",
        sig.to_html(index=False, border=0),
    ]
    if block["disabled"]:
        items = "".join(
            f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in block["disabled"].items()
        )
        parts.append(f"<p>Disabled after an error:</p><ul>{items}</ul>")
    if block["problems"]:
        items = "".join(f"<li>{html.escape(p)}</li>" for p in block["problems"])
        parts.append(f"<p>Problems logged during the run:</p><ul>{items}</ul>")
    if block["warnings"]:
        parts += [
            "<p>Early warnings as they fired during training:</p>",
            pd.DataFrame(block["warnings"]).to_html(index=False, border=0, float_format="%.3f"),
        ]
    return parts
