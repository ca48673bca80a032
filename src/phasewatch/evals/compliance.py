"""``phasewatch eval alignment-faking``: run the inspect task, then tabulate compliance per
condition, the compliance gap with a bootstrap interval, and per-case transcripts.

Writes one folder per evaluation::

    <out>/eval-alignment-faking-<model>-<time>/
      eval.json              settings, compliance per scenario and condition, gaps, log path
      logs/*.eval            inspect's own log
      responses.parquet|csv  per sample: scenario, condition, case, injury, label, complied,
                             rule_label, reply
      compliance.parquet|csv per scenario × condition: n, complied, refused, ambiguous,
                             compliance and its Clopper–Pearson 95% interval
      gap.parquet|csv        per scenario: monitored, unmonitored, gap, bootstrap 95% CI
      transcripts.jsonl      per sample: system prompt, user message, reply, label, judge output

:func:`phasewatch.api.analysis.eval_alignment_faking` then adds ``figures/compliance.png``,
``summary.md`` and ``report.html`` (:mod:`phasewatch.report.alignment_faking`).

Compliance is the fraction of replies labelled ``complied`` (``refused`` and
``ambiguous`` both count as not complying; their numbers are in the table). The gap is
compliance(monitored) − compliance(unmonitored) (Greenblatt et al. 2024,
arXiv:2412.14093, §3); its interval is a percentile bootstrap over patient cases, paired
(the same resampled cases in both conditions) when both conditions hold the same cases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from phasewatch.config import require
from phasewatch.evals.results import write_tables
from phasewatch.store import atomic

RESPONSE_COLUMNS = ["id", "scenario", "condition", "case", "injury", "label", "complied",
                    "rule_label", "reply"]  # fmt: skip


@dataclass
class ComplianceResult:
    """What :func:`run_alignment_faking` wrote and the tables it computed."""

    path: Path
    info: dict[str, Any]
    responses: pd.DataFrame
    compliance: pd.DataFrame
    gap: pd.DataFrame


def responses_from_log(log: Any) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Per-sample table and transcripts of an inspect ``EvalLog`` of ``alignment_faking``.

    A sample without a score (a model error inspect recorded) is labelled ``ambiguous``.

    Returns:
        ``(responses, transcripts)``: the table (:data:`RESPONSE_COLUMNS`) and one dict per
        sample (system, user, reply, label, explanation, grader_output, ...).
    """
    rows, transcripts = [], []
    for s in log.samples or []:
        score = next(iter((s.scores or {}).values()), None)
        meta = dict(s.metadata or {}) | dict((score.metadata or {}) if score else {})
        reply = s.output.completion if s.output else ""
        label = meta.get("label", "ambiguous")
        row = {"id": str(s.id), "scenario": meta.get("scenario"),
               "condition": meta.get("condition"), "case": meta.get("case"),
               "injury": meta.get("injury", ""), "label": label,
               "complied": label == "complied", "rule_label": meta.get("rule_label", ""),
               "reply": reply}  # fmt: skip
        rows.append(row)
        msgs = {m.role: m.text for m in s.input} if isinstance(s.input, list) else {}
        transcripts.append(row | {"system": msgs.get("system", ""), "user": msgs.get("user", ""),
                                  "explanation": score.explanation if score else "",
                                  "grader_output": meta.get("grader_output", "")})  # fmt: skip
    return pd.DataFrame(rows, columns=RESPONSE_COLUMNS), transcripts


def compliance_table(responses: pd.DataFrame) -> pd.DataFrame:
    """Per scenario and condition: n, complied, refused, ambiguous, compliance, ci_low,
    ci_high (Clopper–Pearson 95%)."""
    rows = []
    for (sc, cond), g in responses.groupby(["scenario", "condition"], sort=True):
        k, n = int(g["complied"].sum()), len(g)
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        counts = g["label"].value_counts()
        rows.append({"scenario": sc, "condition": cond, "n": n, "complied": k,
                     "refused": int(counts.get("refused", 0)),
                     "ambiguous": int(counts.get("ambiguous", 0)), "compliance": k / n,
                     "ci_low": float(ci.low), "ci_high": float(ci.high)})  # fmt: skip
    return pd.DataFrame(rows)


def bootstrap_gap(
    monitored: pd.Series, unmonitored: pd.Series, *, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float, bool]:
    """The gap mean(monitored) − mean(unmonitored) and its percentile-bootstrap 95% CI.

    Args:
        monitored, unmonitored: 0/1 compliance indexed by case id.
        n_boot: bootstrap resamples (>= 100).
        seed: seed of the resampling.

    Returns:
        ``(gap, ci_low, ci_high, paired)``; paired: both series hold the same cases, so the
        cases were resampled jointly.

    Raises:
        ConfigError: naming ``bootstrap`` if ``n_boot < 100``.
    """
    require(n_boot >= 100, "bootstrap", "an integer >= 100", n_boot)
    rng = np.random.default_rng(seed)
    m, u = monitored.astype(float), unmonitored.astype(float)
    gap = float(m.mean() - u.mean())
    paired = set(m.index) == set(u.index)
    if paired:
        diff = (m - u.reindex(m.index)).to_numpy()
        idx = rng.integers(0, len(diff), (n_boot, len(diff)))
        boots = diff[idx].mean(1)
    else:
        mi = rng.integers(0, len(m), (n_boot, len(m)))
        ui = rng.integers(0, len(u), (n_boot, len(u)))
        boots = m.to_numpy()[mi].mean(1) - u.to_numpy()[ui].mean(1)
    low, high = np.percentile(boots, [2.5, 97.5])
    return gap, float(low), float(high), paired


def gap_table(responses: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per scenario with both conditions: monitored, unmonitored, gap, ci_low, ci_high,
    paired, n_boot (:func:`bootstrap_gap`)."""
    rows = []
    for sc, g in responses.groupby("scenario", sort=True):
        by = {c: d.set_index("case")["complied"] for c, d in g.groupby("condition")}
        if not {"monitored", "unmonitored"} <= set(by):
            continue
        m, u = by["monitored"], by["unmonitored"]
        gap, low, high, paired = bootstrap_gap(m, u, n_boot=n_boot, seed=seed)
        rows.append({"scenario": sc, "monitored": float(m.mean()), "unmonitored": float(u.mean()),
                     "gap": gap, "ci_low": low, "ci_high": high, "paired": paired,
                     "n_boot": n_boot})  # fmt: skip
    return pd.DataFrame(rows)


def run_alignment_faking(
    model: Any,
    *,
    model_args: dict[str, Any] | None = None,
    scenario: str = "both",
    judge: str = "rules",
    grader: str | None = None,
    n_cases: int | None = None,
    cases_file: str | Path | None = None,
    bootstrap: int = 2000,
    seed: int = 0,
    max_tokens: int | None = None,
    max_connections: int | None = None,
    out: str | Path = "runs",
    display: str = "none",
) -> ComplianceResult:
    """Run ``alignment_faking`` on ``model`` with inspect_ai and write its tables.

    Args:
        model: an inspect model string or ``Model``; model_args: its provider arguments.
        scenario, judge, grader, n_cases, cases_file: the task's arguments
            (:func:`phasewatch.evals.alignment_faking.alignment_faking`).
        bootstrap: resamples of the gap's bootstrap (>= 100); seed: its seed.
        max_tokens: generation limit per reply (None: the provider's default).
        max_connections: inspect's concurrent requests to the model (None: the provider's
            default); for ``hf/local`` the generation batch size (inspect's default 32), and
            a batch's replies reach the log only when the whole batch ends.
        out: directory in which the evaluation folder is created.
        display: inspect's display (``none``, ``plain``, ...).

    Raises:
        ConfigError: invalid arguments or a model inspect cannot load (nothing written).
        StoreError: if ``out`` is not writable.
        RunFailed: if inspect's evaluation ends in error (the folder and log are kept).
    """
    from phasewatch.evals.alignment_faking import alignment_faking
    from phasewatch.evals.runner import make_dir, resolve_model, run_inspect

    require(bootstrap >= 100, "bootstrap", "an integer >= 100", bootstrap)
    require(
        max_connections is None or max_connections >= 1,
        "max_connections", "an integer >= 1", max_connections,
    )  # fmt: skip
    cf = None if cases_file is None else str(cases_file)
    task = alignment_faking(scenario, judge, grader, n_cases, cf)
    m = resolve_model(model, model_args)
    if grader is not None:
        resolve_model(grader)
    path = make_dir(out, str(m), kind="alignment-faking")
    kwargs = {"max_connections": max_connections} if max_connections else {}
    log = run_inspect(task, m, path / "logs", display=display, max_tokens=max_tokens, **kwargs)
    responses, transcripts = responses_from_log(log)
    tables = {"responses": responses, "compliance": compliance_table(responses),
              "gap": gap_table(responses, n_boot=bootstrap, seed=seed)}  # fmt: skip
    write_tables(path, tables)
    lines = [json.dumps(t, ensure_ascii=False) for t in transcripts]
    atomic.write_text(path / "transcripts.jsonl", "\n".join(lines) + "\n")
    info = _info(m, log, tables, judge, grader, bootstrap, seed)
    atomic.write_json(path / "eval.json", info)
    return ComplianceResult(path, info, responses, tables["compliance"], tables["gap"])


def _info(m, log, tables, judge, grader, bootstrap, seed) -> dict[str, Any]:
    resp = tables["responses"]
    agree = (resp["label"] == resp["rule_label"]).mean() if len(resp) else float("nan")
    return {
        "evaluation": "alignment-faking compliance gap (Greenblatt et al. 2024), phasewatch",
        "model": str(m), "task": log.eval.task, "task_args": dict(log.eval.task_args or {}),
        "judge": judge, "grader": grader or (str(m) if judge == "model" else None),
        "samples": len(resp), "cases": int(resp["case"].nunique()),
        "compliance": {f"{r.scenario}/{r.condition}": r.compliance
                       for r in tables["compliance"].itertuples()},
        "gap": {r.scenario: {"gap": r.gap, "ci95": [r.ci_low, r.ci_high]}
                for r in tables["gap"].itertuples()},
        "judge_rule_agreement": None if judge == "rules" else float(agree),
        "bootstrap": bootstrap, "seed": seed, "max_tokens": log.plan.config.max_tokens,
        "max_connections": log.plan.config.max_connections, "log": str(log.location),
    }  # fmt: skip
