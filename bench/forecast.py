"""The forecasting benchmark of docs/forecast/protocol.md, end to end, resumable.

For each family: train every kind's sweep (``docs/forecast/specs/<family>-<kind>.yaml``;
re-running resumes, finished members are never redone), measure every registered signal
on every run up to the family's exploratory median onset (checkpoints already measured
are skipped), then score both tasks (``forecast evaluate`` with all features and with
precursors only; ``leadtime`` for the sequential alarms). CPU seconds of each stage are
added to ``<out>/cost.json`` across interruptions, and the cost table is printed.

    python bench/forecast.py --set exploratory --seeds 1000:1004 --out runs/forecast/exploratory
    python bench/forecast.py --set confirmatory --out runs/forecast/confirmatory \\
        --tables docs/forecast/confirmatory            # seeds from the specs
    python bench/forecast.py ... --families grokking,deep-linear --stages train,measure
    python bench/forecast.py ... --executor ray [--address HOST:PORT]   # same runs, on Ray

With ``--executor ray`` the sweeps train on Ray (``phasewatch sweep --executor ray``) and
each run is measured in a Ray task (one CPU); results and resumption are the same. The
training CPU of Ray's workers is not in ``cost.json`` (they are not this process's
children); measuring's is (each task reports its own).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SPECS = Path(__file__).resolve().parent.parent / "docs" / "forecast" / "specs"
STAGES = ("train", "measure", "analyse")


@dataclass(frozen=True)
class Family:
    """One family of the protocol: its kinds, target, decision rule and measuring range."""

    kinds: tuple[str, ...]
    target: tuple[str, float, str]  # key, threshold, op
    event: str  # the decision step's anchoring onset ('' = step 0)
    offset_frac: float
    until: int  # signals at checkpoints <= this step (the exploratory median onset)
    behaviour: tuple[str, ...]  # feature globs left out of the precursors-only forecaster
    settings: dict  # signal settings passed to measure (pinned: see below)


# The signals' settings, pinned here so that a later calibration of a preset does not change
# the benchmark. The protocol's: LLC at the preset's ε, γ when the protocol was committed
# (grokking's calibrated 1e-3; 3e-4 otherwise) and LLCSettings' chains, draws and burn-in
# then; every other signal at its settings' defaults. Amendment 1 (protocol.md): cheaper
# LLC, Hessian, NTK and commutator settings for grokking and induction, chosen on
# exploratory runs, to keep the confirmatory set near its CPU budget.
_LLC = {"gamma": 100.0, "nbeta": None, "chains": 3, "draws": 50, "burn_in": 30, "seed": 0,
        "step_down": 3}  # fmt: skip
_AMENDMENT_1 = {
    "hessian": {"lanczos_steps": 30, "hutchinson_probes": 4},
    "ntk_alignment": {"samples": 32, "projections": 2},
    "commutator": {"samples": 2},
}
_CHEAP_LLC = {"chains": 1}  # one chain of the protocol's length instead of three


def _settings(epsilon: float, amended: bool) -> dict:
    """The pinned settings of a family (its LLC ε; with Amendment 1 or not)."""
    llc = {**_LLC, "epsilon": epsilon, **(_CHEAP_LLC if amended else {})}
    return {"llc": llc, **(_AMENDMENT_1 if amended else {})}


FAMILIES = {
    "grokking": Family(
        ("transition", "null-subcritical", "null-x2xy", "null-x3xy", "null-wd0"),
        ("test/acc", 0.99, ">="), "memorisation", 0.1, 1_000, ("test/*",),
        _settings(1e-3, amended=True),
    ),
    "omnigrok": Family(
        ("transition", "null"), ("test/acc", 0.8, ">="), "memorisation", 0.05, 3_000,
        ("test/*",), _settings(3e-4, amended=False),
    ),
    "induction": Family(
        ("transition", "null-norepeat", "null-1layer"), ("icl/score", -1.0, "<="), "", 0.25,
        800, ("icl/*", "loss/*"), _settings(3e-4, amended=True),
    ),
    "deep-linear": Family(
        ("transition", "null"), ("modes/last", 0.5, ">="), "mode1", 0.1, 400, ("modes/*",),
        _settings(3e-4, amended=False),
    ),
}  # fmt: skip


def child_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def add_cost(out: Path, family: str, stage: str, cpu: float, wall: float) -> None:
    """Add one stage's seconds to ``out/cost.json`` (atomic)."""
    from phasewatch.store.atomic import write_json

    path = out / "cost.json"
    cost = json.loads(path.read_text()) if path.exists() else {}
    entry = cost.setdefault(family, {}).setdefault(stage, {"cpu_s": 0.0, "wall_s": 0.0})
    entry["cpu_s"] += cpu
    entry["wall_s"] += wall
    write_json(path, cost)


def train(
    family: str, fam: Family, out: Path, seeds: str | None, workers: int, ray: str | None
) -> None:
    """Run (or resume) every kind's sweep of ``family`` (on the Ray at address ``ray`` when
    it is not None)."""
    for kind in fam.kinds:
        spec = SPECS / f"{family}-{kind}.yaml"
        cmd = [sys.executable, "-m", "phasewatch", "sweep", "--spec", str(spec), "--out",
               str(out / family / kind), "--workers", str(workers), "--no-progress"]  # fmt: skip
        if seeds:
            cmd += ["--seeds", seeds]
        if ray is not None:
            cmd += ["--executor", "ray", "--address", ray]
        c0, w0 = child_cpu(), time.perf_counter()
        subprocess.run(cmd, check=True)
        add_cost(out, family, "train", child_cpu() - c0, time.perf_counter() - w0)


def runs_of(root: Path) -> list[Path]:
    """Run directories under ``root`` (sorted)."""
    return sorted(
        p.parent for p in root.rglob("config.json") if (p.parent / "status.json").exists()
    )


def measure_one(run: Path, until: int, settings: dict) -> tuple[Path, float, float]:
    """Every registered signal on ``run`` up to ``until`` (one thread) at ``settings``; its
    CPU and wall seconds."""
    from phasewatch import api
    from phasewatch.signals import base

    c0, w0 = time.process_time(), time.perf_counter()
    api.measure(
        run, base.names(), every=1, until=until, threads=1, progress=False, settings=settings
    )
    return run, time.process_time() - c0, time.perf_counter() - w0


def measure(family: str, fam: Family, out: Path, workers: int, ray: str | None) -> None:
    """Every registered signal on every run of ``family`` up to ``fam.until``, ``workers``
    runs at a time (one thread each; checkpoints already measured are skipped); on the Ray
    at address ``ray``, one task (one CPU) per run, when it is not None."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    runs = runs_of(out / family)
    if ray is not None:
        measure_on_ray(family, fam, out, runs, ray)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(measure_one, run, fam.until, fam.settings) for run in runs]
        for done in as_completed(futures):
            run, cpu, wall = done.result()
            add_cost(out, family, "measure", cpu, wall)
            print(f"measured {run}", flush=True)


def measure_on_ray(family: str, fam: Family, out: Path, runs: list[Path], address: str) -> None:
    """:func:`measure` with one Ray task per run (the runs' folders must be on a file
    system the Ray workers share, as for ``phasewatch sweep --executor ray``)."""
    import ray

    owned = not ray.is_initialized()
    if owned:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    task = ray.remote(num_cpus=1)(measure_one)
    try:
        pending = [task.remote(run, fam.until, fam.settings) for run in runs]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            run, cpu, wall = ray.get(ready[0])
            add_cost(out, family, "measure", cpu, wall)
            print(f"measured {run}", flush=True)
    finally:
        if owned:
            ray.shutdown()


def analyse(family: str, fam: Family, out: Path, tables: Path) -> None:
    """Both tasks of the protocol on ``family``'s runs; tables under ``tables/family``."""
    from phasewatch import api
    from phasewatch.detect.forecast.features import DecisionRule, FeatureConfig
    from phasewatch.detect.run import DetectConfig
    from phasewatch.detect.transitions import Target

    key, threshold, op = fam.target
    kw = dict(
        target=Target(key, threshold, op),
        rule=DecisionRule(fam.event, fam.offset_frac),
        feature_cfg=FeatureConfig(),
        group_by="preset",
    )
    dest = tables / family
    c0, w0 = time.process_time(), time.perf_counter()
    api.forecast_evaluate([out / family], dest / "all", **kw)
    drop = [f"!{g}" for g in fam.behaviour]
    api.forecast_evaluate([out / family], dest / "precursors", features=["*", *drop], **kw)
    cfg = DetectConfig(alpha=0.05, start_event=fam.event or DetectConfig().start_event)
    api.leadtime(out / family, Target(key, threshold, op), cfg, out=dest / "leadtime")
    add_cost(out, family, "analyse", time.process_time() - c0, time.perf_counter() - w0)


def print_cost(out: Path) -> None:
    """The cost table: CPU and wall seconds per family and stage, and the total in CPU-h."""
    path = out / "cost.json"
    if not path.exists():
        return
    cost = json.loads(path.read_text())
    print(f"{'family':<12} {'stage':<8} {'CPU s':>10} {'wall s':>10}")
    total = 0.0
    for family, stages in cost.items():
        for stage, v in stages.items():
            total += v["cpu_s"]
            print(f"{family:<12} {stage:<8} {v['cpu_s']:>10.0f} {v['wall_s']:>10.0f}")
    print(f"total: {total:,.0f} CPU s = {total / 3600:.2f} CPU-h (budget 4 CPU-h)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=("exploratory", "confirmatory"), required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", default=None, help="override the specs' seeds (exploratory)")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tables", type=Path, default=None, help="default OUT/tables")
    ap.add_argument("--executor", choices=("local", "ray"), default="local")
    ap.add_argument("--address", default="", help="Ray address (default: a local Ray)")
    args = ap.parse_args()
    if args.set == "exploratory" and (not args.seeds or int(args.seeds.split(":")[0]) < 1000):
        ap.error("the exploratory set uses seeds >= 1000 (--seeds 1000:1004)")
    if args.set == "confirmatory" and args.seeds:
        ap.error("the confirmatory set uses the specs' seeds (no --seeds)")
    families = [f for f in args.families.split(",") if f]
    stages = [s for s in args.stages.split(",") if s]
    for name in families + stages:
        if name not in FAMILIES and name not in STAGES:
            ap.error(f"unknown family or stage {name!r}; allowed: {', '.join(FAMILIES)}; "
                     f"{', '.join(STAGES)}")  # fmt: skip
    if args.address and args.executor != "ray":
        ap.error("--address needs --executor ray")
    ray = args.address if args.executor == "ray" else None
    if ray == "":  # one local Ray for every stage (each sweep would otherwise start its own)
        import ray as ray_

        ray_.init(logging_level="ERROR", log_to_driver=False)
        ray = ray_.get_runtime_context().gcs_address
    args.out.mkdir(parents=True, exist_ok=True)
    for family in families:
        fam = FAMILIES[family]
        if "train" in stages:
            train(family, fam, args.out, args.seeds, args.workers, ray)
        if "measure" in stages:
            measure(family, fam, args.out, args.workers, ray)
        if "analyse" in stages:
            analyse(family, fam, args.out, args.tables or args.out / "tables")
    print_cost(args.out)


if __name__ == "__main__":
    main()
