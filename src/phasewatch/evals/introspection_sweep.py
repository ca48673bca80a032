"""Thought-injection localization swept over layers, scales, or models of different size.

- ``layers``: the protocol (:mod:`phasewatch.evals.introspection`) at each injection
  layer, same trials and seed (the reported layer sweep: early layers work best in small
  models; 98% at layer 18 of 62 in a 27B model).
- ``scale``: at each multiplier of the concept vector.
- ``models``: each model at the same layer fraction and scale; accuracy against parameter
  count is the emergence-across-scale plot (reported: the ability appears around 1B
  parameters). Beside accuracy (a discontinuous metric) the table holds smooth metrics as
  in the mirage analysis (Schaeffer et al. 2023, "Are Emergent Abilities of Large Language
  Models a Mirage?", §3): the mean probability of the correct digit, and the same within
  the five digits' probability mass.

Each row of ``sweep.parquet`` is :func:`~phasewatch.evals.introspection.summarise` of one
setting (accuracy, Clopper–Pearson 95% interval, binomial p-value vs 20%, smooth metrics)
with its ``layer``, ``scale``, ``model`` and ``parameters``; ``predictions.parquet`` holds
every prediction with the same keys. Figures and ``summary.md`` come from
:mod:`phasewatch.report.introspection` (through :mod:`phasewatch.api.analysis`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from phasewatch.config import require
from phasewatch.evals import hooks
from phasewatch.evals import introspection as I
from phasewatch.store import atomic

SWEEPS = ("layers", "scale")
DEFAULT_SCALES = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)


@dataclass
class SweepResult:
    """The folder written, its settings and the two tables."""

    path: Path
    info: dict[str, Any]
    sweep: pd.DataFrame
    predictions: pd.DataFrame


def parse_scales(text: str | None) -> list[float]:
    """``"1,5,10"`` → ``[1.0, 5.0, 10.0]``; None → :data:`DEFAULT_SCALES`.

    Raises:
        ConfigError: naming ``--scales`` unless every value is a number > 0.
    """
    if text is None:
        return list(DEFAULT_SCALES)
    try:
        values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        values = []
    ok = bool(values) and all(v > 0 for v in values)
    require(ok, "--scales", "comma-separated numbers > 0", text)
    return sorted(set(values))


def parse_layers(text: str | None, n_layers: int) -> list[int]:
    """``"0,2,0.5"`` (indices or fractions) → sorted distinct indices; None/``all`` → every
    layer.

    Raises:
        ConfigError: naming ``--layer`` for a value out of range.
    """
    if text is None or text.strip() == "all":
        return list(range(n_layers))
    parts = [p.strip() for p in text.split(",") if p.strip()]
    require(bool(parts), "--layers", "comma-separated indices or fractions, or all", text)
    return sorted({I.parse_layer(p, n_layers) for p in parts})


def sweep_model(
    model: Any,
    tokenizer: Any,
    settings: list[tuple[int, float]],
    *,
    trials: int,
    seed: int,
    data: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The protocol at each ``(layer, scale)`` of ``settings`` on one loaded model.

    Returns:
        ``(rows, predictions)``: one summary row per setting (``layer, layer_fraction,
        scale`` + :func:`~phasewatch.evals.introspection.summarise`, ``seconds``), and every
        prediction with its ``layer`` and ``scale``.
    """
    n_layers = len(hooks.decoder_layers(model))
    rows, preds = [], []
    for layer, scale in settings:
        start = time.perf_counter()
        pred = I.evaluate(model, tokenizer, layer=layer, scale=scale, trials=trials,
                          seed=seed, data=data)  # fmt: skip
        key = {"layer": layer, "layer_fraction": layer / n_layers, "scale": scale}
        rows.append(key | I.summarise(pred) | {"seconds": round(time.perf_counter() - start, 2)})
        preds.append(pred.assign(**key))
    return pd.DataFrame(rows), pd.concat(preds, ignore_index=True)


def _write(path: Path, info: dict, sweep: pd.DataFrame, pred: pd.DataFrame) -> SweepResult:
    atomic.write_parquet(path / "sweep.parquet", sweep)
    atomic.write_text(path / "sweep.csv", sweep.to_csv(index=False))
    atomic.write_parquet(path / "predictions.parquet", pred)
    atomic.write_json(path / "summary.json", info)
    return SweepResult(path, info, sweep, pred)


def run_sweep(
    cfg: I.IntrospectionConfig,
    folder: Path,
    kind: str,
    *,
    layers: str | None = None,
    scales: list[float] | None = None,
    out: str | Path = "runs",
) -> SweepResult:
    """Sweep one model over layers (at ``cfg.scale``) or scales (at ``cfg.layer``).

    Args:
        cfg: the model id, layer, scale, trials, seed and data.
        folder: the model's local Hugging Face folder.
        kind: ``layers`` or ``scale``.
        layers: the layers of a layer sweep (:func:`parse_layers`; None: all).
        scales: the scales of a scale sweep (None: :data:`DEFAULT_SCALES`).
        out: directory in which the evaluation folder is created.

    Raises:
        ConfigError: bad kind, data, layer or scale; not a causal LM (nothing written).
        StoreError: if ``out`` is not writable.
    """
    require(kind in SWEEPS, "--sweep", ", ".join(SWEEPS), kind)
    data = I.load_data(cfg.data)
    model, tok = I.load_causal_lm(Path(folder))
    n_layers = len(hooks.decoder_layers(model))
    if kind == "layers":
        settings = [(ly, cfg.scale) for ly in parse_layers(layers, n_layers)]
    else:
        layer = I.parse_layer(cfg.layer, n_layers)
        settings = [(layer, s) for s in (scales or DEFAULT_SCALES)]
        require(all(s > 0 for _, s in settings), "--scales", "numbers > 0", scales)
    I.check_context(model, tok, data["sentences"])
    path = I.make_dir(Path(out), cfg.model, kind)
    atomic.write_json(path / "config.json", asdict(cfg) | {"folder": str(folder), "sweep": kind})
    rows, pred = sweep_model(model, tok, settings, trials=cfg.trials, seed=cfg.seed, data=data)
    params = sum(p.numel() for p in model.parameters())
    rows = rows.assign(model=cfg.model, parameters=params)
    info = {"sweep": kind, "model": cfg.model, "n_layers": n_layers, "parameters": params,
            "trials": cfg.trials, "seed": cfg.seed,
            "best": rows.loc[rows["accuracy"].idxmax()].to_dict()}  # fmt: skip
    return _write(path, info, rows, pred.assign(model=cfg.model))


def run_models(
    cfg: I.IntrospectionConfig,
    models: dict[str, Path],
    *,
    out: str | Path = "runs",
) -> SweepResult:
    """Each model at ``cfg.layer`` (best given as a fraction of depth) and ``cfg.scale``.

    Args:
        cfg: layer, scale, trials, seed and data (``cfg.model`` names the comparison).
        models: ``{model id: local folder}``, in the order to report.
        out: directory in which the evaluation folder is created.

    Raises:
        ConfigError: a model that is not a causal LM, a layer out of its range, too short a
            context (checked for every model before anything is written).
        StoreError: if ``out`` is not writable.
    """
    data = I.load_data(cfg.data)
    loaded = {}
    for name, folder in models.items():
        model, tok = I.load_causal_lm(Path(folder))
        layer = I.parse_layer(cfg.layer, len(hooks.decoder_layers(model)))
        I.check_context(model, tok, data["sentences"])
        loaded[name] = (model, tok, layer)
    path = I.make_dir(Path(out), "-".join(Path(m).name for m in models), "models")
    atomic.write_json(
        path / "config.json", asdict(cfg) | {"models": {k: str(v) for k, v in models.items()}}
    )
    rows, preds = [], []
    for name, (model, tok, layer) in loaded.items():
        r, p = sweep_model(model, tok, [(layer, cfg.scale)], trials=cfg.trials,
                           seed=cfg.seed, data=data)  # fmt: skip
        params = sum(q.numel() for q in model.parameters())
        rows.append(r.assign(model=name, parameters=params))
        preds.append(p.assign(model=name))
    table = pd.concat(rows, ignore_index=True).sort_values("parameters", kind="stable")
    info = {"sweep": "models", "models": list(models), "layer": cfg.layer, "scale": cfg.scale,
            "trials": cfg.trials, "seed": cfg.seed}  # fmt: skip
    return _write(path, info, table.reset_index(drop=True), pd.concat(preds, ignore_index=True))
