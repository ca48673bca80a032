"""LLC calibration: sweep the SGLD step ε, localization γ (and optionally nβ), keep the
traces, and recommend a setting by a documented rule.

Calibration is not optional (references.md, "Library notes": on the grokking model the
devinterp estimate moved from 140 to 9 to ~0 as the step went 1e-4 → 1e-5 → 1e-6).

Recommendation rule. A grid point *passes* when
    1. no chain diverged (every loss finite);
    2. every chain estimate is >= 0 (the sampler did not find lower loss than w* on
       average: otherwise ε is too large or w* is not a local minimum at this scale), and
       the estimate is at least ``min_llc`` (default 1/2, one regular parameter's worth:
       below it the sampler is pinned by a large γ or a tiny ε and resolves no loss
       direction — seen on grokked checkpoints whose loss is ~1e-7);
    3. the estimate is not significantly above d/2 (the learning coefficient of a regular
       model with d parameters, an upper bound for every model; Watanabe 2009, Thm 7.2);
    4. the traces are stationary after burn-in: the estimates from the first and the
       second half of the draws differ by at most ``drift_tol`` × the estimate (plus two
       standard errors over chains).
Among passing points the rule takes the smallest γ (least localization bias), then the
largest ε (fastest mixing, least sensitive to the number of draws), then the nβ closest
to n / log n. If none passes there is no recommendation; the summary says why each
point failed.

:func:`calibrate_llc` runs the grid on one probe; :func:`calibrate_run` runs it on a stored
run's checkpoint and writes ``tables/llc_calibration.parquet``,
``tables/llc_calibration_traces.parquet`` and ``signals.json`` (``llc_calibration``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from phasewatch.config import from_dict, require, require_choice
from phasewatch.errors import StoreError
from phasewatch.signals.base import Probe, step_generator
from phasewatch.signals.llc import LLCResult, LLCSettings, default_nbeta, estimate_llc
from phasewatch.signals.runner import BuildTask, make_probe, torch_threads
from phasewatch.store import RunDir, open_run
from phasewatch.store.atomic import write_json
from phasewatch.store.signals import read_signals_json
from phasewatch.training.progress import progress_bar


@dataclass(frozen=True)
class LLCCalibration:
    """The calibration grid and its sampler budget.

    The default grid brackets the ``llc`` signal's default (ε = 3e-4, γ = 100) by a factor
    of ~30 in ε and 10 in γ, with the same chains/draws/burn-in as :class:`LLCSettings`, so
    the recommendation is judged at the budget ``measure`` will use. Measured on the
    grokking ``quick`` preset (seed 0, 2026-12-01): the rule recommends ε = 3e-4 with
    γ = 10 at step 250 and γ = 100 at step 5,000; ε = 1e-3 diverges at γ = 10; ε ≤ 1e-4 is
    not stationary within 50 draws.

    Attributes:
        epsilons: SGLD step sizes ε to try (each > 0).
        gammas: localization strengths γ to try (each >= 0).
        nbetas: inverse temperatures nβ to try; empty = only the default n / log n.
        chains, draws, burn_in: per grid point (as in :class:`LLCSettings`).
        drift_tol: stationarity tolerance of rule 4 (relative, > 0).
        min_llc: the smallest estimate rule 2 accepts (>= 0).
        seed: seeds the SGLD noise.
    """

    epsilons: tuple[float, ...] = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3)
    gammas: tuple[float, ...] = (10.0, 100.0, 1000.0)
    nbetas: tuple[float, ...] = ()
    chains: int = LLCSettings.chains
    draws: int = LLCSettings.draws
    burn_in: int = LLCSettings.burn_in
    drift_tol: float = 0.2
    min_llc: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epsilons", "gammas", "nbetas"):
            object.__setattr__(self, name, tuple(float(x) for x in getattr(self, name)))
        require(self.epsilons and min(self.epsilons) > 0, "epsilons", "floats > 0", self.epsilons)
        require(self.gammas and min(self.gammas) >= 0, "gammas", "floats >= 0", self.gammas)
        require(all(x > 0 for x in self.nbetas), "nbetas", "floats > 0", self.nbetas)
        require(self.draws >= 4, "draws", "an integer >= 4", self.draws)
        require(self.drift_tol > 0, "drift_tol", "a float > 0", self.drift_tol)
        require(self.min_llc >= 0, "min_llc", "a float >= 0", self.min_llc)

    def settings(self, epsilon: float, gamma: float, nbeta: float | None) -> LLCSettings:
        """The ``llc`` settings of one grid point with this grid's budget and seed.

        Args:
            epsilon: SGLD step size ε.
            gamma: localization strength γ.
            nbeta: inverse temperature nβ; None for the default n / log n.
        """
        return LLCSettings(
            epsilon=epsilon,
            gamma=gamma,
            nbeta=nbeta,
            chains=self.chains,
            draws=self.draws,
            burn_in=self.burn_in,
            seed=self.seed,
        )


def judge(res: LLCResult, drift_tol: float, min_llc: float = 0.5) -> tuple[dict[str, float], str]:
    """Summary numbers of one grid point and why it fails ("" if it passes).

    Stationarity (rule 4): per chain, the estimate from the second half of the draws minus
    that from the first half; the trace drifts if the mean difference exceeds
    ``drift_tol·|λ̂|`` plus two standard errors of that mean (so chain noise alone does not
    fail a point).
    """
    half = (res.traces.shape[1] - res.burn_in) // 2
    sampled = res.traces[res.ok, res.burn_in :]
    drift, significant = float("nan"), True
    if len(sampled):
        first = res.nbeta * (sampled[:, :half].mean(axis=1) - res.init_loss)
        second = res.nbeta * (sampled[:, half:].mean(axis=1) - res.init_loss)
        diff = second - first
        se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) >= 2 else 0.0
        drift = float(abs(diff.mean()) / max(abs(res.mean), 1e-12))
        significant = abs(diff.mean()) > drift_tol * abs(res.mean) + 2 * se
    v = res.values()
    reasons = []
    if v["llc/flag/diverged"]:
        reasons.append("diverged")
    if v["llc/flag/below_init"]:
        reasons.append("below init loss")
    elif res.mean < min_llc:
        reasons.append(f"below min_llc={min_llc:g} (sampler pinned)")
    if v["llc/flag/above_bound"]:
        reasons.append("above d/2")
    if significant:
        reasons.append(f"not stationary (drift {drift:.2f} > {drift_tol:g})")
    row = {"llc_mean": v["llc/mean"], "llc_std": v["llc/std"], "drift": drift}
    return row, "; ".join(reasons)


def recommend(summary: pd.DataFrame, n: int) -> pd.Series | None:
    """The recommended row of a calibration summary (rule in the module docstring)."""
    ok = summary[summary["passes"]]
    if ok.empty:
        return None
    target = default_nbeta(n)
    ok = ok.assign(_dn=(ok["nbeta"] - target).abs())
    best = ok.sort_values(["gamma", "epsilon", "_dn"], ascending=[True, False, True]).iloc[0]
    return best.drop("_dn")


def calibrate_llc(
    probe: Probe,
    grid: LLCCalibration,
    *,
    generator: torch.Generator,
    progress: Callable[[], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict | None]:
    """Run the grid on one checkpoint.

    Args:
        probe: the checkpoint to calibrate on.
        grid: the ε × γ (× nβ) grid and per-point budget.
        generator: SGLD noise.
        progress: optional ``callable()`` called after each grid point.

    Returns:
        ``(summary, traces, recommended)``: one summary row per grid point (``epsilon,
        gamma, nbeta, llc_mean, llc_std, drift, passes, reason, recommended``), the tidy
        traces (``epsilon, gamma, nbeta, chain, draw, loss``), and the recommended
        settings as a dict of :class:`LLCSettings` fields (None if no point passes).
    """
    nbetas = grid.nbetas or (default_nbeta(probe.n),)
    rows, traces = [], []
    for eps, gamma, nbeta in itertools.product(grid.epsilons, grid.gammas, nbetas):
        res = estimate_llc(probe, grid.settings(eps, gamma, nbeta), generator=generator)
        row, reason = judge(res, grid.drift_tol, grid.min_llc)
        rows.append({"epsilon": eps, "gamma": gamma, "nbeta": nbeta, **row, "reason": reason})
        traces.append(res.trace_table().assign(epsilon=eps, gamma=gamma, nbeta=nbeta))
        if progress is not None:
            progress()
    summary = pd.DataFrame(rows)
    summary["passes"] = summary["reason"] == ""
    best = recommend(summary, probe.n)
    summary["recommended"] = False
    chosen = None
    if best is not None:
        mask = (
            (summary["epsilon"] == best["epsilon"])
            & (summary["gamma"] == best["gamma"])
            & (summary["nbeta"] == best["nbeta"])
        )
        summary.loc[mask, "recommended"] = True
        default = default_nbeta(probe.n)
        nb = None if np.isclose(best["nbeta"], default) else float(best["nbeta"])
        base = LLCSettings()
        chosen = replace(base, epsilon=float(best["epsilon"]), gamma=float(best["gamma"]), nbeta=nb)
        chosen = {k: getattr(chosen, k) for k in ("epsilon", "gamma", "nbeta")}
    return summary, pd.concat(traces, ignore_index=True), chosen


# ---- a stored run --------------------------------------------------------------------------
def calibrate_run(
    run: str | Path,
    *,
    step: int | None = None,
    grid: LLCCalibration | dict[str, Any] | None = None,
    threads: int = 1,
    progress: bool = True,
    build_task: BuildTask,
) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """Sweep the LLC's SGLD settings on one checkpoint and recommend one.

    Writes ``tables/llc_calibration.parquet`` (one row per grid point) and
    ``tables/llc_calibration_traces.parquet`` (loss traces), and the recommendation to
    ``signals.json`` under ``llc_calibration``.

    Args:
        run: a run directory.
        step: the checkpoint (default: the last one).
        grid: the grid (:class:`LLCCalibration` or its fields as a dict).
        threads: torch threads (default 1; see
            :func:`~phasewatch.signals.runner.torch_threads`).
        progress: show a progress bar over grid points.
        build_task: ``build_task(run) -> Task`` (see
            :data:`~phasewatch.signals.runner.BuildTask`).

    Returns:
        ``(summary, recommended)``; ``recommended`` is ``{"epsilon", "gamma", "nbeta"}``
        or None when no grid point passes the rule (module docstring).

    Raises:
        ConfigError: on a bad grid or a step without checkpoint.
        StoreError: if the run is missing or has no checkpoints.
    """
    if grid is None or isinstance(grid, dict):
        grid = from_dict(LLCCalibration, grid or {}, where="llc calibration")
    rd = open_run(run)
    all_steps = rd.checkpoint_steps()
    if not all_steps:
        raise StoreError(f"{rd.path}: no checkpoints to calibrate on; train the run first")
    step = all_steps[-1] if step is None else step
    require_choice("step", step, all_steps)
    task = build_task(rd)
    task.model.load_state_dict(rd.load_checkpoint(step))
    probe = make_probe(task, step)
    n_points = len(grid.epsilons) * len(grid.gammas) * max(1, len(grid.nbetas))
    with progress_bar(progress) as bar, torch_threads(threads):
        tid = bar.add_task("calibrate llc", total=n_points)
        summary, traces, chosen = calibrate_llc(
            probe,
            grid,
            generator=step_generator(grid.seed, step),
            progress=lambda: bar.advance(tid),
        )
    _store(rd, step, grid, summary, traces, chosen)
    return summary, chosen


def _store(
    rd: RunDir,
    step: int,
    grid: LLCCalibration,
    summary: pd.DataFrame,
    traces: pd.DataFrame,
    chosen: dict[str, Any] | None,
) -> None:
    """Write the calibration tables (with a ``step`` column) and its ``signals.json``
    entry (step, grid, recommendation) to run ``rd``."""
    rd.write_table("llc_calibration", summary.assign(step=step))
    rd.write_table("llc_calibration_traces", traces.assign(step=step))
    meta = read_signals_json(rd)
    meta["llc_calibration"] = {
        "step": step,
        "grid": asdict(grid),
        "recommended": chosen,
    }
    write_json(rd.path / "signals.json", meta)
