"""Analyses of many runs and of other tools' formats: the lead-time benchmark, Base64Bench
and the alignment-faking gap with their reports, and the TransformerLens export."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from phasewatch.api.runs import load_model
from phasewatch.errors import ConfigError
from phasewatch.store import open_run

if TYPE_CHECKING:
    from phasewatch.detect.run import DetectConfig
    from phasewatch.detect.transitions import Target
    from phasewatch.evals.compliance import ComplianceResult
    from phasewatch.evals.runner import EvalResult


def leadtime(
    root: str | Path,
    target: Target,
    cfg: DetectConfig | None = None,
    *,
    out: str | Path | None = None,
    progress: bool = False,
) -> Path:
    """The lead-time benchmark of a sweep directory
    (:func:`phasewatch.detect.leadtime.leadtime`), written by
    :func:`phasewatch.report.leadtime.write_outputs`.

    Writes into ``out``: ``leadtime.parquet``/``.md`` (one row per series × indicator:
    hit_rate, false_alarm_rate, lead_median/q25/q75 in steps, lead_frac_median, auc),
    ``roc.parquet``, ``change_point_leads.parquet``, ``runs.parquet``,
    ``window_sensitivity.parquet``, ``summary.json`` and ``report.html``.

    Args:
        root: a directory of runs (a sweep).
        target: the metric and threshold whose onset signals should anticipate.
        cfg: detection settings (None: the defaults).
        out: the output directory (default ``<root>/leadtime``).
        progress: show a progress bar while the runs are analysed.

    Returns:
        The path of ``report.html``.

    Raises:
        ConfigError: if the target is in no finished run (the message lists the keys).
        StoreError: if ``root`` holds no run.
    """
    from phasewatch.detect.leadtime import leadtime as benchmark
    from phasewatch.report.leadtime import write_outputs

    res = benchmark(root, target, cfg, progress=progress)
    dest = Path(out) if out else Path(root) / "leadtime"
    return write_outputs(dest, res.tables, res.runs, res.views, res.meta)


def eval_base64bench(model: Any, **kwargs: Any) -> EvalResult:
    """Run Base64Bench on ``model`` (:func:`phasewatch.evals.runner.run_base64bench`, same
    arguments) and add its figures, ``summary.md`` and ``report.html``
    (:func:`phasewatch.report.evals.write_eval_report`).

    Returns:
        The :class:`~phasewatch.evals.runner.EvalResult` (folder and tables).

    Raises:
        ConfigError: on invalid arguments or a model inspect cannot load (nothing written).
        StoreError: if ``out`` is not writable.
        RunFailed: if inspect's evaluation ends in error (the folder and log are kept).
    """
    from phasewatch.evals.runner import run_base64bench
    from phasewatch.report.evals import write_eval_report

    result = run_base64bench(model, **kwargs)
    write_eval_report(result.path, result.info, result.sweep, result.per_type)
    return result


def eval_alignment_faking(model: Any, **kwargs: Any) -> ComplianceResult:
    """Run the alignment-faking compliance gap on ``model``
    (:func:`phasewatch.evals.compliance.run_alignment_faking`, same arguments) and add its
    figure, ``summary.md`` and ``report.html``
    (:func:`phasewatch.report.alignment_faking.write_alignment_report`).

    Returns:
        The :class:`~phasewatch.evals.compliance.ComplianceResult` (folder and tables).

    Raises:
        ConfigError: on invalid arguments or a model inspect cannot load (nothing written).
        StoreError: if ``out`` is not writable.
        RunFailed: if inspect's evaluation ends in error (the folder and log are kept).
    """
    from phasewatch.evals.compliance import run_alignment_faking
    from phasewatch.report.alignment_faking import write_alignment_report

    r = run_alignment_faking(model, **kwargs)
    write_alignment_report(r.path, r.info, r.responses, r.compliance, r.gap)
    return r


def eval_introspection_sweep(cfg: Any, folder: Path, kind: str, **kwargs: Any):
    """A thought-injection sweep over layers or scales
    (:func:`phasewatch.evals.introspection_sweep.run_sweep`, same arguments) with its
    figure and ``summary.md`` (:func:`phasewatch.report.introspection.write_sweep_report`).

    Raises:
        ConfigError: bad settings or model (nothing written); StoreError: ``out`` not
            writable.
    """
    from phasewatch.evals.introspection_sweep import run_sweep
    from phasewatch.report.introspection import write_sweep_report

    r = run_sweep(cfg, folder, kind, **kwargs)
    write_sweep_report(r.path, r.info, r.sweep)
    return r


def eval_introspection_models(cfg: Any, models: dict[str, Path], **kwargs: Any):
    """Thought-injection accuracy against parameter count
    (:func:`phasewatch.evals.introspection_sweep.run_models`) with its figure and
    ``summary.md``.

    Raises:
        ConfigError: a bad model, layer or setting (nothing written); StoreError: ``out``
            not writable.
    """
    from phasewatch.evals.introspection_sweep import run_models
    from phasewatch.report.introspection import write_sweep_report

    r = run_models(cfg, models, **kwargs)
    write_sweep_report(r.path, r.info, r.sweep)
    return r


def eval_introspection_patching(cfg: Any, folder: Path, **kwargs: Any):
    """Two-sentence localization with activation patching per layer
    (:func:`phasewatch.evals.patching.run_patching`) with its figure and ``summary.md``.

    Raises:
        ConfigError: bad settings or model (nothing written); StoreError: ``out`` not
            writable.
    """
    from phasewatch.evals.patching import run_patching
    from phasewatch.report.introspection import write_patching_report

    r = run_patching(cfg, folder, **kwargs)
    write_patching_report(r.path, r.info, r.sweep)
    return r


def export_transformer_lens(
    run: str | Path, *, step: int | None = None, out: str | Path | None = None
) -> dict[str, Path]:
    """Write a checkpoint as TransformerLens ``HookedTransformer`` config + weights
    (:mod:`phasewatch.models.tlens`).

    Args:
        run: a run of a transformer phenomenon (grokking, induction, base64-ladder).
        step: a step with a checkpoint; None = the last one.
        out: output folder; default ``<run>/transformer_lens/step_<step:06d>``. A base64
            ladder writes one subfolder per member (``<out>/<member>``).

    Returns:
        ``{member: folder}`` (the member is ``""`` for a single model).

    Raises:
        StoreError: if the run is missing, has no checkpoint, or ``out`` is not writable.
        ConfigError: if ``step`` has no checkpoint or the run's model is not a transformer.
        MissingDependency: if the phenomenon needs an extra that is not installed.
    """
    from torch import nn

    from phasewatch.models.tlens import export_tl, require_transformer
    from phasewatch.store.checkpoints import checkpoint_step

    rd = open_run(run)
    kind = rd.config()["phenomenon"]
    step = checkpoint_step(rd, step)
    model = load_model(rd.path, step)
    models = dict(model.items()) if isinstance(model, nn.ModuleDict) else {"": model}
    try:
        for m in models.values():
            require_transformer(m)
    except ConfigError:
        raise ConfigError(
            f"{rd.path}: a {kind!r} run; allowed: runs of a transformer phenomenon "
            "(grokking, induction, base64-ladder)"
        ) from None
    folder = Path(out) if out is not None else rd.path / "transformer_lens" / f"step_{step:06d}"
    return {
        name: export_tl(m, folder / name if name else folder, name=f"phasewatch-{kind}-{step}")
        for name, m in models.items()
    }
