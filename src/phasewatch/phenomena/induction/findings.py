"""Whole-run findings of an induction-heads run, from its stored checkpoints.

Per checkpoint the ICL score and the per-head scores are recomputed on the fixed
repeated-block set (Olsson et al. 2022, §"Key Concepts"); from those curves come the
phase-change steps, the induction and previous-token heads and the top head's attention
before and after its transition. Written to ``events.json`` and
``tables/attention_top_head.parquet`` for the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from phasewatch.config import TrainConfig
from phasewatch.models import run_with_cache
from phasewatch.phenomena.base import Findings
from phasewatch.phenomena.induction import scores as sc
from phasewatch.phenomena.induction.config import (
    INDUCTION_THRESHOLD,
    PREVIOUS_TOKEN_THRESHOLD,
    InductionConfig,
)
from phasewatch.phenomena.induction.task import InductionTask, head_name

_SCORE_NAMES = {"pm": "prefix_matching", "pt": "previous_token", "cp": "copying"}
_TRANSITION_RULE = (
    "start/mid/end = first checkpoint covering 10/50/90% of the change "
    "from the first checkpoint to the extreme value"
)
_ICL_RULE = (
    "loss at token index late minus early on held-out repeated blocks; "
    "late = round(0.8 * (n_ctx - 1)), early = round(late * 50 / 500) "
    "(Olsson et al. 2022: indices 500 and 50)"
)


def _scores_at(task: InductionTask, state: dict[str, Tensor]) -> dict[str, Any]:
    """ICL score (nats) and (layer, head) prefix-matching, previous-token and copying
    scores of the weights ``state``, loaded into ``task.model``."""
    task.model.load_state_dict(state)
    losses, pm, pt, cp = task.repeat_measures()
    return {
        "icl": sc.icl_score(losses, task.early, task.late),
        "pm": torch.stack(pm),  # (L, H)
        "pt": torch.stack(pt),
        "cp": torch.stack(cp),
    }


def _history(
    task: InductionTask, checkpoints: Iterator[tuple[int, dict[str, Tensor]]]
) -> tuple[list[int], list[dict[str, Any]], dict[int, dict[str, Tensor]]]:
    """Steps, scores at each step and the states themselves (small models: kept for the
    attention tables)."""
    steps: list[int] = []
    hist: list[dict[str, Any]] = []
    states: dict[int, dict[str, Tensor]] = {}
    for step, state in checkpoints:
        steps.append(step)
        states[step] = state
        hist.append(_scores_at(task, state))
    return steps, hist, states


def _attention_rows(task: InductionTask, layer: int, head: int) -> pd.DataFrame:
    """One head's causal attention on the first repeated-block sequence (long table)."""
    name = f"blocks.{layer}.attn.hook_pattern"
    _, cache = run_with_cache(task.model, task.rep_tokens[:1], names=[name])
    return sc.attention_table(cache[name][0, head].cpu(), task.rep_tokens[0].cpu())


def _attention_before_after(
    task: InductionTask,
    states: dict[int, dict[str, Tensor]],
    steps: list[int],
    head: tuple[int, int],
    start: int | None,
) -> tuple[pd.DataFrame, int]:
    """The attention table of ``head`` = (layer, head) at the last checkpoint before
    ``start`` (the first checkpoint if none) and at the last one, with ``phase`` and
    ``step`` columns; and the step used for "before"."""
    before = max((s for s in steps if start is not None and s < start), default=steps[0])
    parts = []
    for phase, step in (("before", before), ("after", steps[-1])):
        task.model.load_state_dict(states[step])
        parts.append(_attention_rows(task, *head).assign(phase=phase, step=step))
    return pd.concat(parts, ignore_index=True), before


def _heads_list(
    end: dict[str, Any], key: str, threshold: float, steps: list[int], hist: list[dict]
) -> list[dict[str, Any]]:
    """Heads whose final ``key`` score is >= threshold: final scores, first crossing step."""
    found = sc.heads_above(end[key], [h[key] for h in hist], steps, threshold)
    return [
        {"layer": layer, "head": head, "name": head_name(layer, head), "onset_step": first}
        | {name: round(float(end[k][layer, head]), 4) for k, name in _SCORE_NAMES.items()}
        for layer, head, first in found
    ]


def _phase_change(
    cfg: InductionConfig, steps: list[int], hist: list[dict[str, Any]], top_head: dict[str, Any]
) -> dict[str, Any]:
    """Transition steps (:func:`~.scores.transition_steps`) of the ICL score (minimum change
    10% of ln vocab nats), of the largest prefix-matching and previous-token scores (0.2),
    and ``top_head``, the top head's prefix-matching transition."""
    icl = [h["icl"] for h in hist]
    pm_max = [float(h["pm"].max()) for h in hist]
    pt_max = [float(h["pt"].max()) for h in hist]
    return {
        "icl_score": sc.transition_steps(steps, icl, min_change=0.1 * float(np.log(cfg.vocab))),
        "prefix_matching_max": sc.transition_steps(steps, pm_max, min_change=0.2),
        "previous_token_max": sc.transition_steps(steps, pt_max, min_change=0.2),
        "top_head_prefix_matching": top_head,
        "rule": _TRANSITION_RULE,
    }


def findings(
    cfg: InductionConfig,
    train: TrainConfig,
    checkpoints: Iterator[tuple[int, dict[str, Tensor]]],
    final: dict[str, Tensor],
) -> Findings:
    """Phase-change steps, the induction heads and the top head's attention before/after.

    Per stored checkpoint, the ICL score and the per-head scores are recomputed on the
    fixed repeated-block set; transitions are located with
    :func:`~phasewatch.phenomena.induction.scores.transition_steps` (so their resolution is
    ``checkpoint_every`` steps). The top induction head is the final model's head with the
    largest prefix-matching score; its attention on one repeated sequence is tabled at the
    last checkpoint before its prefix-matching transition starts and at the end.

    Args:
        cfg, train: the run's configs.
        checkpoints: ``(step, state_dict)`` of the stored checkpoints, ascending steps.
        final: the final weights.

    Returns:
        Events (``icl_positions``, ``phase_change``, ``induction_heads``,
        ``previous_token_heads``, ``top_induction_head``) and the ``attention_top_head``
        table; no metric rows.
    """
    task = InductionTask(cfg, train)
    end = _scores_at(task, final)
    layer, head = divmod(int(end["pm"].argmax()), cfg.n_heads)
    steps, hist, states = _history(task, checkpoints)
    top_pm = [float(h["pm"][layer, head]) for h in hist]
    head_tr = sc.transition_steps(steps, top_pm, min_change=0.2)
    table, before = _attention_before_after(task, states, steps, (layer, head), head_tr["start"])
    events: dict[str, Any] = {
        "icl_positions": {
            "early": task.early,
            "late": task.late,
            "n_ctx": cfg.n_ctx,
            "rule": _ICL_RULE,
        },
        "phase_change": _phase_change(cfg, steps, hist, head_tr),
        "induction_threshold": INDUCTION_THRESHOLD,
        "induction_heads": _heads_list(end, "pm", INDUCTION_THRESHOLD, steps, hist),
        "previous_token_heads": _heads_list(end, "pt", PREVIOUS_TOKEN_THRESHOLD, steps, hist),
        "top_induction_head": {
            "layer": layer,
            "head": head,
            "name": head_name(layer, head),
            "prefix_matching": round(float(end["pm"][layer, head]), 4),
            "copying": round(float(end["cp"][layer, head]), 4),
            "before_step": before,
            "after_step": steps[-1],
        },
    }
    return Findings(rows=[], events=events, tables={"attention_top_head": table})
