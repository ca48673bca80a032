"""Whole-run findings of a grokking run: the final model's key frequencies and the
restricted and excluded losses of every stored checkpoint (Nanda et al. 2023, arXiv
2301.05217, §4.2 and §5.1).

As in the paper, ``progress/restricted_loss`` and ``progress/excluded_loss`` use the key
frequencies of the *final* model: they are hindsight measures (a value at step t depends on
weights after t), listed in :data:`HINDSIGHT_KEYS` and left out of forecasting features.
Their causal variants ``progress/restricted_loss_causal`` and
``progress/excluded_loss_causal`` use the key frequencies of the checkpoint at t itself
(no row at checkpoints with no key frequency yet)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from einops import rearrange
from jaxtyping import Float
from torch import Tensor

from phasewatch.config import TrainConfig
from phasewatch.models import run_with_cache
from phasewatch.phenomena.base import Findings
from phasewatch.phenomena.grokking import fourier
from phasewatch.phenomena.grokking.config import GrokkingConfig
from phasewatch.phenomena.grokking.task import GrokkingTask

# measures whose value at step t depends on the final model (see the module docstring)
HINDSIGHT_KEYS = ("progress/restricted_loss", "progress/excluded_loss")


def logit_table(task: GrokkingTask) -> Float[Tensor, "p p p"]:
    """``logits[a, b, c]`` for every pair (needs a task without division's missing b = 0)."""
    with torch.no_grad():
        logits = task.logits()  # (p·p, p), pairs a-major
    return rearrange(logits, "(a b) c -> a b c", a=task.cfg.p)


def neuron_table(task: GrokkingTask) -> Float[Tensor, "p p d_mlp"]:
    """Read-out position MLP activations ``blocks.0.mlp.hook_post`` for every pair (a, b)."""
    name = "blocks.0.mlp.hook_post"
    _, cache = run_with_cache(task.model, task.tokens, names=[name])
    return rearrange(cache[name][:, -1], "(a b) n -> a b n", a=task.cfg.p)


def findings(
    cfg: GrokkingConfig,
    train: TrainConfig,
    checkpoints: Iterator[tuple[int, dict[str, Tensor]]],
    final: dict[str, Tensor],
) -> Findings:
    """Key frequencies of the final model; restricted and excluded loss per checkpoint.

    Restricted/excluded loss are defined for ``add`` (Nanda et al. 2023, §5.1); for
    other operations, or when no key frequency is found, only the key frequencies are
    reported.

    Args:
        cfg, train: the run's configs.
        checkpoints: ``(step, state_dict)`` of the stored checkpoints, ascending steps.
        final: the final weights.

    Returns:
        Rows ``progress/restricted_loss`` and ``progress/excluded_loss`` (nats, final key
        frequencies: hindsight) and their ``_causal`` variants (the checkpoint's own key
        frequencies) per checkpoint step, and events ``key_frequencies`` and
        ``neurons_per_frequency``.
    """
    task = GrokkingTask(cfg, train)
    task.model.load_state_dict(final)
    keys, counts = fourier.key_frequencies(neuron_table(task))
    extra: dict[str, Any] = {"key_frequencies": keys, "neurons_per_frequency": counts}
    rows: list[tuple[int, str, float]] = []
    if cfg.op != "add" or not keys:
        return Findings(rows, extra)
    train_mask = rearrange(task.train_mask, "(a b) -> a b", a=cfg.p)
    for step, state in checkpoints:
        task.model.load_state_dict(state)
        table = logit_table(task)
        own, _ = fourier.key_frequencies(neuron_table(task))
        for suffix, freqs in (("", keys), ("_causal", own)):
            if not freqs:
                continue
            restricted = fourier.restricted_loss(table, freqs)
            excluded = fourier.excluded_loss(table, freqs, train_mask)
            rows.append((step, f"progress/restricted_loss{suffix}", restricted))
            rows.append((step, f"progress/excluded_loss{suffix}", excluded))
    return Findings(rows, extra)
