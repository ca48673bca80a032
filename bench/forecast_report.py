"""The forecasting benchmark's results page, from the tables ``bench/forecast.py`` wrote.

Reads ``TABLES/<family>/{all,precursors,leadtime}`` for every family that has them and
writes ``TABLES/results.md`` (per family: runs, both forecasters' cross-validated AUROC
with its bootstrap interval and alarm figures, leave-one-null-kind-out AUROCs, the best
single precursor features, the best sequential early-warning indicators; the hypotheses
H1-H3 and the moonshot of ``docs/forecast/protocol.md`` judged by their stated rules; the
cost), ``TABLES/roc.png`` (the forecasters' ROC curves, one panel per family) and
``TABLES/<family>/runs.csv`` (run, preset, label, start, decision step, onset).

    python bench/forecast_report.py --tables docs/forecast/confirmatory \\
        --cost runs/forecast/confirmatory/cost.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

FAMILIES = ("grokking", "omnigrok", "induction", "deep-linear")
ALPHA = 0.05  # the false-alarm budget of the protocol


def load(tables: Path, family: str) -> dict | None:
    """The family's tables, or None when its analysis has not run yet."""
    d = tables / family
    if not (d / "precursors" / "summary.json").exists():
        return None
    out = {}
    for name in ("all", "precursors"):
        out[name] = json.loads((d / name / "summary.json").read_text())
        out[f"{name}_table"] = pd.read_parquet(d / name / "table.parquet")
        out[f"{name}_kinds"] = pd.read_csv(d / name / "null_kinds.csv")
        out[f"{name}_single"] = pd.read_csv(d / name / "single.csv")
    lt = d / "leadtime" / "leadtime.parquet"
    out["leadtime"] = pd.read_parquet(lt) if lt.exists() else pd.DataFrame()
    return out


def runs_csv(tables: Path, family: str, res: dict) -> None:
    """``<family>/runs.csv``: one row per run of the run-level task (excluded ones listed)."""
    t = res["all_table"][["run", "group", "label", "start", "decision_step", "onset"]].copy()
    t["run"] = t["run"].map(lambda p: "/".join(Path(p).parts[-2:]))
    excl = pd.DataFrame({"run": res["all"]["excluded"], "group": None, "label": None})
    excl["excluded"] = True
    t["excluded"] = False
    pd.concat([t, excl], ignore_index=True).to_csv(tables / family / "runs.csv", index=False)


def csd(lt: pd.DataFrame) -> pd.DataFrame:
    """Sequential critical-slowing-down rows (τ of variance / lag-1 autocorrelation)."""
    if lt.empty:
        return lt
    return lt[lt["indicator"].isin(["variance", "ac1"])].sort_values("auc", ascending=False)


def warns(row: pd.Series) -> bool:
    """The protocol's bar for a sequential indicator: AUC >= 0.75, hit rate >= 50% at
    <= 5% (leave-one-out) false alarms."""
    return bool(row["auc"] >= 0.75 and row["hit_rate"] >= 0.5 and row["false_alarm_rate"] <= ALPHA)


def hypotheses(res: dict[str, dict]) -> list[str]:
    """H1-H3 and the moonshot, each 'supported', 'not supported' or 'not yet run'."""
    out = []
    g, dl, ind = res.get("grokking"), res.get("deep-linear"), res.get("induction")
    if g:
        c = csd(g["leadtime"])
        hits = c[c.apply(warns, axis=1)] if len(c) else c
        verdict = "supported" if hits.empty else "not supported"
        which = ", ".join(f"{r.key} · {r.indicator}" for r in hits.itertuples()) or "none"
        out.append(f"- **H1** (CSD fails on grokking): {verdict}; passing the bar: {which}.")
    else:
        out.append("- **H1**: not yet run.")
    if dl:
        c = csd(dl["leadtime"])
        c = c[c["key"].str.contains("loss") | c["key"].str.startswith(("geometry/norm", "weights"))]
        hits = c[c.apply(warns, axis=1)] if len(c) else c
        verdict = "supported" if len(hits) else "not supported"
        which = ", ".join(f"{r.key} · {r.indicator} (AUC {r.auc:.2f}, hits {r.hit_rate:.0%})"
                          for r in hits.head(5).itertuples()) or "none"  # fmt: skip
        out.append(f"- **H2** (CSD warns on the deep-linear control): {verdict}; {which}.")
    else:
        out.append("- **H2**: not yet run.")
    if g:
        fc = g["precursors"]["forecaster_cv"]
        kinds = g["precursors_kinds"]
        ok = fc["auroc"] >= 0.9 and len(kinds) and (kinds["auroc"] >= 0.8).all()
        per = ", ".join(f"{r.null_kind} {r.auroc:.2f}" for r in kinds.itertuples())
        out.append(f"- **H3** (precursors-only forecaster on grokking, AUROC ≥ 0.9 and ≥ 0.8 "
                   f"per held-out null kind): {'supported' if ok else 'not supported'}; "
                   f"AUROC {fc['auroc']:.2f} [{fc['ci_low']:.2f}, {fc['ci_high']:.2f}]; "
                   f"per null kind: {per}.")  # fmt: skip
        a = g["all"]["forecaster_cv"]["auroc"]
        leads = {f: r["all"]["forecaster_cv"].get("lead_frac") for f, r in
                 (("grokking", g), ("induction", ind)) if r}  # fmt: skip
        lead_ok = len(leads) == 2 and all(v is not None and v >= 0.3 for v in leads.values())
        verdict = "reached" if lead_ok else "not reached" if len(leads) == 2 else "pending"
        out.append(f"- Moonshot: all-feature AUROC on grokking {a:.2f} (target 0.95: "
                   f"{'reached' if a >= 0.95 else 'not reached'}); forecaster alarm's median "
                   f"lead as a fraction of the delay: "
                   + ", ".join(f"{f} {v:.2f}" if v is not None else f"{f} —"
                               for f, v in leads.items())
                   + f" (target ≥ 0.30 on grokking and induction: {verdict}).")  # fmt: skip
    return out


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)


def family_section(family: str, res: dict) -> list[str]:
    """The markdown of one family."""
    t = res["all_table"]
    lines = [f"## {family}", "", f"Runs in the run-level task: {len(t)} ({int(t.label.sum())} "
             f"transition within the budget, {int((1 - t.label).sum())} not), excluded "
             f"(transitioned by the decision step): {len(res['all']['excluded'])}; "
             f"decision rule: {res['all']['rule']}. Per preset (transitions / runs): "
             + ", ".join(f"{k} {int(v.sum())}/{len(v)}" for k, v in t.groupby("group").label),
             "", "| forecaster | AUROC [95% CI] | alarm threshold | false alarms | hit rate "
             "| median lead (steps) | lead / delay |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name in ("all", "precursors"):
        f = res[name]["forecaster_cv"]
        lines.append(f"| {name} | {f['auroc']:.2f} [{f['ci_low']:.2f}, {f['ci_high']:.2f}] | "
                     f"{fmt(f.get('threshold'), '.3g')} | {fmt(f.get('false_alarms'))} | "
                     f"{fmt(f.get('hit_rate'))} | {fmt(f.get('lead_steps'), '.0f')} | "
                     f"{fmt(f.get('lead_frac'))} |")  # fmt: skip
    kinds = res["precursors_kinds"]
    if len(kinds):
        lines += ["", "Leave-one-null-kind-out (precursors only): " + ", ".join(
            f"{r.null_kind} (n = {r.n_null}) {r.auroc:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]"
            for r in kinds.itertuples())]  # fmt: skip
    s = res["precursors_single"].head(8)
    lines += ["", "Best single precursor features (run-level AUROC, |AUROC − 0.5| largest; "
              "AUROC < 0.5: lower in transition runs; not confirmatory unless named beforehand):",
              "", "| feature | AUROC [95% CI] | hit rate at ≤ 5% false alarms | lead / delay |",
              "|---|---|---|---|"]  # fmt: skip
    for r in s.itertuples():
        lines.append(
            f"| `{r.feature}` | {r.auroc:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] | "
            f"{fmt(r.hit_rate)} | {fmt(r.lead_frac)} |"
        )
    c = csd(res["leadtime"]).head(8)
    if len(c):
        lines += ["", "Best sequential early-warning indicators (`leadtime`; τ of rolling "
                  "variance / lag-1 autocorrelation; false alarms leave-one-out on nulls):", "",
                  "| series · indicator | AUC | hit rate | false alarms | median lead "
                  "| lead / delay |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for r in c.itertuples():
            lines.append(f"| `{r.key}` · {r.indicator} | {r.auc:.2f} | {r.hit_rate:.2f} | "
                         f"{r.false_alarm_rate:.2f} | {fmt(r.lead_median, '.0f')} | "
                         f"{fmt(r.lead_frac_median)} |")  # fmt: skip
        dead = int(csd(res["leadtime"])["cannot_fire"].fillna(False).sum())
        lines.append(f"\n{dead} series × indicator pairs cannot fire (threshold τ = 1).")
    return lines + [""]


def roc_figure(res: dict[str, dict], path: Path) -> None:
    """The forecasters' cross-validated ROC curves, one panel per family."""
    fams = [f for f in FAMILIES if f in res]
    fig, axes = plt.subplots(1, len(fams), figsize=(3.6 * len(fams), 3.6), squeeze=False)
    for ax, f in zip(axes[0], fams):
        for name, style in (("all", "-"), ("precursors", "--")):
            t = res[f][f"{name}_table"]
            fpr, tpr, _ = roc_curve(t["label"], t["forecaster_cv"])
            auc = res[f][name]["forecaster_cv"]["auroc"]
            ax.plot(fpr, tpr, style, label=f"{name} ({auc:.2f})")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.axvline(ALPHA, color="red", lw=0.6)
        ax.set(title=f, xlabel="false-positive rate", ylabel="true-positive rate")
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cost_lines(cost_path: Path | None) -> list[str]:
    """The cost table (CPU seconds per family and stage) from bench/forecast.py's cost.json."""
    if not cost_path or not cost_path.exists():
        return []
    cost = json.loads(cost_path.read_text())
    lines = ["## Cost", "", "| family | stage | CPU s | run-seconds (wall, summed over runs) |",
             "|---|---|---|---|"]  # fmt: skip
    total = 0.0
    for fam, stages in cost.items():
        for stage, v in stages.items():
            total += v["cpu_s"]
            lines.append(f"| {fam} | {stage} | {v['cpu_s']:,.0f} | {v['wall_s']:,.0f} |")
    return lines + ["", f"Total so far: {total / 3600:.2f} CPU-h (budget 4 CPU-h).", ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=Path, required=True)
    ap.add_argument("--cost", type=Path, default=None)
    args = ap.parse_args()
    res = {f: r for f in FAMILIES if (r := load(args.tables, f)) is not None}
    if not res:
        ap.error(f"no family's tables under {args.tables}")
    for f, r in res.items():
        runs_csv(args.tables, f, r)
    roc_figure(res, args.tables / "roc.png")
    lines = ["# Forecasting benchmark: confirmatory results", "",
             "Written by `bench/forecast_report.py` from the tables of `bench/forecast.py` "
             "(protocol: `docs/forecast/protocol.md`, with its amendments). Families not "
             "listed have not been run yet.", "", "## Hypotheses", "", *hypotheses(res), "",
             "![ROC](roc.png)", ""]  # fmt: skip
    for f, r in res.items():
        lines += family_section(f, r)
    lines += cost_lines(args.cost)
    (args.tables / "results.md").write_text("\n".join(lines))
    print(args.tables / "results.md")


if __name__ == "__main__":
    main()
