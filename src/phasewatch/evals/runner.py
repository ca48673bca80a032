"""``phasewatch eval base64bench``: run the inspect task on a model, then tabulate.

Writes one folder per evaluation::

    <out>/eval-base64bench-<model>-<time>/
      eval.json                   settings, headline accuracies, status counts, log path
      dataset.jsonl               the samples that were run (type, direction, length, text)
      logs/*.eval                 inspect's own log (read back with inspect's log API)
      samples.parquet|csv         per sample: type, direction, length, similarity, status
      sweep.parquet|csv           accuracy vs threshold, all and per direction
      per_type.parquet|csv        per type and direction: n, mean similarity, acc@1, acc@0.95

:func:`phasewatch.api.eval_base64bench` then adds ``figures/sweep.png``,
``figures/per_type.png``, ``summary.md`` and ``report.html``
(:mod:`phasewatch.report.evals`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from phasewatch.config import require
from phasewatch.errors import ConfigError, RunFailed, StoreError
from phasewatch.evals import results as R
from phasewatch.evals.dataset import read_jsonl, records, write_jsonl
from phasewatch.store import atomic

_MARKUP = re.compile(r"\[/?[a-z ]+\]")


def one_line(e: BaseException) -> str:
    """An exception's message on one line, rich markup removed (inspect's errors use it)."""
    text = _MARKUP.sub("", str(e))
    parts = [p.strip() for p in text.splitlines() if p.strip()]
    return " ".join(parts) or type(e).__name__


@dataclass
class EvalResult:
    """What :func:`run_base64bench` wrote and the tables it computed.

    Attributes:
        path: the evaluation folder.
        info: the contents of ``eval.json`` (model, task, accuracy per threshold, ...).
        samples, sweep, per_type: the tables (see the module docstring).
    """

    path: Path
    info: dict[str, Any]
    samples: pd.DataFrame
    sweep: pd.DataFrame
    per_type: pd.DataFrame


def offline_mock_output(messages: Any, tools: Any, tool_choice: Any, config: Any) -> Any:
    """mockllm's default reply with its token usage set (a characters/4 estimate).

    Without usage, mockllm counts tokens with tiktoken's ``o200k_base`` encoding, whose
    file tiktoken downloads on first use; setting it here keeps ``--model mockllm/model``
    offline.
    """
    from inspect_ai.model import ModelOutput, ModelUsage
    from inspect_ai.model._providers.mockllm import MockLLM

    out = ModelOutput.from_content(model="mockllm", content=MockLLM.default_output)
    n_in = max(1, sum(len(m.text) for m in messages) // 4)
    n_out = max(1, len(MockLLM.default_output) // 4)
    out.usage = ModelUsage(input_tokens=n_in, output_tokens=n_out, total_tokens=n_in + n_out)
    return out


def resolve_model(model: Any, model_args: dict[str, Any] | None = None) -> Any:
    """An inspect ``Model`` from a ``provider/name`` string (or a ``Model`` as is).

    ``mockllm/...`` without ``custom_outputs`` gets :func:`offline_mock_output` (no
    network).

    Raises:
        ConfigError: with inspect's own error on one line (unknown provider, missing
            provider package or API key, unloadable local model).
    """
    from inspect_ai.model import Model, get_model

    if isinstance(model, Model):
        return model
    args = dict(model_args or {})
    if str(model).startswith("hf/local") and "model_path" not in args:
        raise ConfigError("model=hf/local needs -M model_path=<folder with config.json>")
    if str(model).startswith("mockllm/"):
        args.setdefault("custom_outputs", offline_mock_output)
    try:
        return get_model(model, **args)
    except Exception as e:  # inspect raises ValueError, PrerequisiteError, OSError, ...
        raise ConfigError(f"model={model!r} is invalid: {one_line(e)}") from None


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:60] or "model"


def make_dir(out: str | Path, model_name: str, kind: str = "base64bench") -> Path:
    """A new folder ``<out>/eval-<kind>-<model>-<time>`` (suffixed ``-2``… if taken).

    Raises:
        StoreError: naming ``--out`` if it is not writable.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(out) / f"eval-{kind}-{_slug(model_name)}-{stamp}"
    path, n = base, 1
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        path.mkdir()
    except OSError as e:
        msg = f"--out {out}: not writable ({e.strerror}); allowed: a writable directory"
        raise StoreError(msg) from None
    return path


def _validate(limit: int | None, threshold: float, thresholds: list[float]) -> None:
    require(limit is None or limit >= 1, "limit", "an integer >= 1 (or no limit)", limit)
    require(0.0 <= threshold <= 1.0, "threshold", "a float in [0, 1]", threshold)
    bad = [t for t in thresholds if not 0.0 <= t <= 1.0]
    require(bool(thresholds) and not bad, "thresholds", "numbers in [0, 1]", bad or thresholds)


def run_base64bench(
    model: Any,
    *,
    model_args: dict[str, Any] | None = None,
    limit: int | None = None,
    direction: str = "both",
    n_per_type: int = 50,
    seed: int = 0,
    types: str | list[str] | None = None,
    dataset: str | Path | None = None,
    threshold: float = 0.95,
    thresholds: list[float] | None = None,
    max_tokens: int | None = None,
    max_connections: int | None = None,
    out: str | Path = "runs",
    display: str = "none",
) -> EvalResult:
    """Run Base64Bench on ``model`` with inspect_ai and write its log and tables.

    The figures, ``summary.md`` and ``report.html`` are written by
    :func:`phasewatch.api.eval_base64bench`, which calls this.

    Args:
        model: an inspect model string (``openai/gpt-4o-mini``, ``hf/local``) or ``Model``.
        model_args: provider arguments (``{"model_path": "runs/<run>/hf"}`` for hf/local).
        limit: run only the first ``limit`` samples (balanced over types; None: all).
        direction: ``both``, ``encode`` or ``decode``.
        n_per_type, seed, types, dataset, threshold: the task's arguments
            (:func:`phasewatch.evals.base64bench.base64bench`).
        thresholds: thresholds of the sweep (default :func:`~.results.default_thresholds`).
        max_tokens: the generation limit passed to inspect (None: the provider's default).
        max_connections: inspect's concurrent requests to the model (None: the provider's
            default); for ``hf/local`` it is the generation batch size (default 32), and
            since a batch is padded to its longest prompt, a smaller value is cheaper on CPU
            when prompt lengths differ (Base64Bench's run from 1 to ~3,700 tokens).
        out: directory in which the evaluation folder is created.
        display: inspect's display (``none``, ``plain``, ``rich``, ...).

    Returns:
        The folder written and its tables.

    Raises:
        ConfigError: on invalid arguments or a model inspect cannot load (nothing written).
        StoreError: if ``out`` is not writable.
        RunFailed: if inspect's evaluation ends in error (the folder and log are kept).
    """
    thresholds = sorted(set(thresholds)) if thresholds is not None else R.default_thresholds()
    _validate(limit, threshold, thresholds)
    require(
        max_connections is None or max_connections >= 1,
        "max_connections", "an integer >= 1", max_connections,
    )  # fmt: skip
    if dataset is not None:
        recs = read_jsonl(dataset, direction)
    else:
        recs = records(n_per_type, seed, types, direction)
    m = resolve_model(model, model_args)
    task = _task(direction, n_per_type, seed, types, threshold, dataset)
    path = make_dir(out, str(m))
    write_jsonl(path / "dataset.jsonl", recs[:limit] if limit else recs)
    kwargs = {"max_connections": max_connections} if max_connections else {}
    log = run_inspect(
        task, m, path / "logs", limit=limit, display=display, max_tokens=max_tokens, **kwargs
    )
    return _write_outputs(path, log, m, threshold, thresholds, limit)


def run_inspect(task: Any, model: Any, log_dir: Path, **kwargs: Any) -> Any:
    """inspect's evaluation of ``task``, its log read back; RunFailed unless it succeeded."""
    from inspect_ai import eval as inspect_eval
    from inspect_ai.log import read_eval_log

    logs = inspect_eval(task, model=model, log_dir=str(log_dir), **kwargs)
    log = read_eval_log(logs[0].location)
    if log.status != "success":
        why = one_line(Exception(log.error.message)) if log.error else log.status
        raise RunFailed(f"inspect eval ended with status {log.status}: {why}; log: {log.location}")
    return log


def _task(
    direction: str,
    n_per_type: int,
    seed: int,
    types: str | list[str] | None,
    threshold: float,
    dataset: str | Path | None,
) -> Any:
    from phasewatch.evals import base64bench as B

    make = {"both": B.base64bench, "encode": B.base64bench_encode, "decode": B.base64bench_decode}
    ds = None if dataset is None else str(dataset)
    return make[direction](
        n_per_type=n_per_type, seed=seed, types=types, threshold=threshold, dataset=ds
    )


def _write_outputs(
    path: Path, log: Any, model: Any, threshold: float, thresholds: list[float], limit: int | None
) -> EvalResult:
    samples = R.samples_from_log(log)
    sweep = R.sweep(samples, thresholds)
    per_type = R.per_type(samples, (1.0, 0.95))
    R.write_tables(path, {"samples": samples, "sweep": sweep, "per_type": per_type})
    info = {
        "benchmark": "Base64Bench (2025), phasewatch reimplementation",
        "model": str(model),
        "task": log.eval.task,
        "task_args": dict(log.eval.task_args or {}),
        "limit": limit,
        "max_tokens": log.plan.config.max_tokens,
        "max_connections": log.plan.config.max_connections,
        "samples": len(samples),
        "threshold": threshold,
        "accuracy": {f"{t:g}": R.accuracy(samples, t) for t in (1.0, 0.95, 0.9, threshold)},
        "mean_similarity": float(samples["similarity"].mean()) if len(samples) else None,
        "status_counts": R.status_counts(samples),
        "log": str(log.location),
    }
    atomic.write_json(path / "eval.json", info)
    return EvalResult(path, info, samples, sweep, per_type)
