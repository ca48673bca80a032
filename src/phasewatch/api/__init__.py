"""The Python API behind the CLI, the one place that composes the boxes of the flow
(tests and users call these directly): :mod:`.runs` (train, analyse, measure, calibrate,
rebuild a run's model), :mod:`.analysis` (lead-time benchmark, Base64Bench, TransformerLens
export), :mod:`.forecast` (the forecasting benchmark and forecaster)."""

from phasewatch.api.analysis import eval_base64bench, export_transformer_lens, leadtime
from phasewatch.api.forecast import (
    forecast_apply,
    forecast_evaluate,
    forecast_fit,
    forecast_table,
)
from phasewatch.api.runs import (
    analyse,
    build_task,
    calibrate,
    configs,
    finish_run,
    load_model,
    measure,
    resolve_config,
    run,
    train_run,
)
from phasewatch.store.index import list_runs

__all__ = [
    "analyse",
    "build_task",
    "calibrate",
    "configs",
    "eval_base64bench",
    "export_transformer_lens",
    "finish_run",
    "forecast_apply",
    "forecast_evaluate",
    "forecast_fit",
    "forecast_table",
    "leadtime",
    "list_runs",
    "load_model",
    "measure",
    "resolve_config",
    "run",
    "train_run",
]
