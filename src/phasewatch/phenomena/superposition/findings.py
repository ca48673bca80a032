"""Whole-run findings of a superposition run: the geometry of the final weights as tables
and a JSON summary (Elhage et al. 2022, "Toy Models of Superposition", §"The Geometry of
Superposition" and §"Superposition as a Phase Change")."""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torch import Tensor

from phasewatch.config import TrainConfig
from phasewatch.phenomena.base import Findings
from phasewatch.phenomena.superposition import geometry as geo
from phasewatch.phenomena.superposition.config import SuperpositionConfig
from phasewatch.phenomena.superposition.task import SuperpositionTask


def _events(cfg: SuperpositionConfig, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """``notes`` (e.g. m >= n) and the ``superposition`` summary for ``events.json``."""
    notes = []
    if cfg.m >= cfg.n:
        notes.append(
            f"m={cfg.m} >= n={cfg.n}: every feature can have its own dimension, "
            "so no superposition is expected."
        )
    summary = geo.summarise_tables(tables["instances"], tables["features"])
    return {
        "notes": notes,
        "superposition": {
            "n": cfg.n,
            "m": cfg.m,
            "instances": cfg.instances,
            "replicas": cfg.replicas,
            "norm_threshold": cfg.norm_threshold,
            **summary,
        },
    }


def findings(cfg: SuperpositionConfig, train: TrainConfig, final: dict[str, Tensor]) -> Findings:
    """Geometry of the final weights: per-instance and per-feature tables, Gram matrices,
    the capacity table and (for an importance grid) the phase diagram.

    Args:
        cfg, train: the run's configs.
        final: the final weights (``W`` and ``b``).

    Returns:
        Tables ``instances``, ``features``, ``gram``, ``capacity`` (see
        :func:`~.geometry.weight_tables`) and ``phase_diagram`` (best replica per cell:
        density, relative importance, the last feature's phase, represented count) when
        ``cfg.n_importances > 1``; events ``notes`` and ``superposition``; no metric rows.
    """
    task = SuperpositionTask.from_config(cfg, train)
    task.model.load_state_dict(final)
    with torch.no_grad():
        losses = task.instance_losses(task.eval_batch()).double().cpu()
    dens, imp = cfg.grid()
    b = task.model.b.detach().double().cpu()
    tables = geo.weight_tables(
        task.weights(), b, dens, imp, losses, cfg.norm_threshold, replicas=cfg.replicas
    )
    if cfg.n_importances > 1:
        inst = tables["instances"]
        tables["phase_diagram"] = inst.loc[
            inst["best"],
            ["density", "relative_importance", "last_feature_phase", "represented"],
        ].rename(columns={"last_feature_phase": "phase"})
    return Findings([], _events(cfg, tables), tables)
