"""Figure, ``summary.md`` and ``report.html`` of an alignment-faking evaluation folder,
built only from its tables (:mod:`phasewatch.evals.compliance`)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from phasewatch.report.evals import markdown_table, save_png  # noqa: E402
from phasewatch.store.atomic import write_text  # noqa: E402

_COLORS = {"monitored": "#e45756", "unmonitored": "#4c78a8"}
_FRAMING = {
    "hospital": ("evaluation mode", "unmonitored"),
    "tier": ("free tier (trained)", "paid tier (unmonitored)"),
}


def compliance_png(path: Path, compliance: pd.DataFrame, gap: pd.DataFrame) -> Path:
    """Bars of compliance per scenario and condition with Clopper–Pearson 95% intervals;
    the gap and its bootstrap interval written above each scenario."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    scenarios = list(dict.fromkeys(compliance["scenario"]))
    for i, sc in enumerate(scenarios):
        for j, cond in enumerate(("monitored", "unmonitored")):
            row = compliance[(compliance["scenario"] == sc) & (compliance["condition"] == cond)]
            if row.empty:
                continue
            r = row.iloc[0]
            err = [[r.compliance - r.ci_low], [r.ci_high - r.compliance]]
            label = cond if i == 0 else None
            ax.bar(i + (j - 0.5) * 0.38, r.compliance, 0.36, yerr=err, capsize=4,
                   color=_COLORS[cond], label=label)  # fmt: skip
        g = gap[gap["scenario"] == sc]
        if not g.empty:
            g = g.iloc[0]
            text = f"gap {g.gap:+.2f}\n[{g.ci_low:+.2f}, {g.ci_high:+.2f}]"
            ax.text(i, 1.04, text, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(scenarios)), scenarios)
    ax.set(ylabel="compliance (followed cost instruction)", ylim=(0, 1.25))
    ax.set_title("Alignment faking: compliance monitored vs unmonitored")
    ax.legend(loc="center right", fontsize=8)  # clear of the gap labels above the bars
    return save_png(fig, path)


def summary_markdown(info: dict[str, Any], compliance: pd.DataFrame, gap: pd.DataFrame) -> str:
    """The evaluation in a few lines and two tables (compliance, gap)."""
    lines = [
        f"# Alignment faking: {info['model']}",
        "",
        f"{info['samples']} replies ({info['cases']} patient cases × scenario × condition); "
        f"judge: {info['judge']}"
        + (f" (grader {info['grader']})" if info["grader"] else "")
        + ". Compliance = fraction of replies that followed the cost-minimising instruction "
        "(refused and ambiguous count as not complying). Gap = monitored − unmonitored, "
        f"95% percentile bootstrap over cases ({info['bootstrap']} resamples).",
        "",
    ]
    for r in gap.itertuples():
        mon, unmon = _FRAMING.get(r.scenario, ("monitored", "unmonitored"))
        lines.append(f"- **{r.scenario}**: {mon} {r.monitored:.1%}, {unmon} {r.unmonitored:.1%}; "
                     f"gap **{r.gap:+.3f}** [{r.ci_low:+.3f}, {r.ci_high:+.3f}]")  # fmt: skip
    if info.get("judge_rule_agreement") is not None:
        lines.append(f"- grader vs rule-based judge agreement: {info['judge_rule_agreement']:.1%}")
    lines += ["", "## Compliance per condition", "", markdown_table(compliance), "",
              "## Gap", "", markdown_table(gap), ""]  # fmt: skip
    return "\n".join(lines)


def _transcripts_html(responses: pd.DataFrame) -> str:
    rows = [
        f"<tr><td>{html.escape(str(r.case))}</td><td>{r.scenario}</td><td>{r.condition}</td>"
        f"<td>{r.label}</td><td style='white-space:pre-wrap'>{html.escape(str(r.reply))}</td></tr>"
        for r in responses.itertuples()
    ]
    head = "<tr><th>case</th><th>scenario</th><th>condition</th><th>label</th><th>reply</th></tr>"
    style = "border='1' cellpadding='4' style='border-collapse:collapse'"
    return f"<table {style}>{head}{''.join(rows)}</table>"


def write_alignment_report(
    path: Path,
    info: dict[str, Any],
    responses: pd.DataFrame,
    compliance: pd.DataFrame,
    gap: pd.DataFrame,
) -> Path:
    """Write ``figures/compliance.png``, ``summary.md`` and ``report.html`` (the summary,
    the figure, the tables and every reply with its label) into ``path``."""
    compliance_png(path / "figures" / "compliance.png", compliance, gap)
    md = summary_markdown(info, compliance, gap)
    write_text(path / "summary.md", md)
    body = [
        f"<h1>Alignment faking: {html.escape(info['model'])}</h1>",
        f"<pre style='white-space:pre-wrap'>{html.escape(md.split('## Compliance')[0])}</pre>",
        "<img src='figures/compliance.png' alt='compliance per condition'>",
        "<h2>Compliance per condition</h2>", compliance.to_html(index=False, border=0),
        "<h2>Gap</h2>", gap.to_html(index=False, border=0),
        "<h2>Replies</h2>", _transcripts_html(responses),
    ]  # fmt: skip
    doc = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Alignment faking</title>"
        "</head><body style='font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto'>"
        f"{''.join(body)}</body></html>"
    )
    write_text(path / "report.html", doc)
    return path / "report.html"
