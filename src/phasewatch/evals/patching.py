"""Two-sentence thought-injection localization with activation patching per layer.

The suggested next step of the protocol (issue 17): list two sentences; the concept
vector (:func:`~phasewatch.evals.introspection.concept_vector`, scale ``s``) is injected
at layer :math:`L` into sentence 1 (the *clean* run) or sentence 2 (the *corrupted*
run); the metric is the logit difference after "It is located in SENTENCE",
:math:`\\mathrm{LD} = \\mathrm{logit}(1) - \\mathrm{logit}(2)`. A model that localizes the
injection has :math:`\\mathrm{LD}_{clean} > \\mathrm{LD}_{corr}`.

Activation patching (Meng et al. 2022, §2.1; Heimersheim & Nanda 2024): the corrupted run
is repeated with the output of decoder layer :math:`\\ell` replaced, at one group of
positions, by its value in the clean run, for every layer :math:`\\ell` and group
(``sentence1``, ``sentence2``, ``last`` = the answer position, ``all``). The normalised
effect of a (layer, group) is

.. math:: E = \\frac{\\overline{\\mathrm{LD}}_{patched} - \\overline{\\mathrm{LD}}_{corr}}
              {\\overline{\\mathrm{LD}}_{clean} - \\overline{\\mathrm{LD}}_{corr}}

(means over trials): 1 where the information that decides the answer lives, 0 where it
does not. Before the injection layer the two runs are identical, so every effect is 0;
patching ``all`` positions at :math:`\\ell \\ge L` restores the clean run, so it is 1.

Two-sentence accuracy: per trial the clean run should give LD > 0 and the corrupted run
LD < 0 (2 predictions per trial, chance 50%, binomial test).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

from phasewatch.evals import hooks
from phasewatch.evals import introspection as I
from phasewatch.evals.introspection_sweep import SweepResult
from phasewatch.evals.transcript import answer_tokens, build_prompt
from phasewatch.store import atomic

GROUPS = ("sentence1", "sentence2", "last", "all")


def _masks(spans: list[list[int]], t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(G, T) patch masks of :data:`GROUPS`; (G, T) injection masks (sentence 2)."""
    groups = torch.zeros(len(GROUPS), t, dtype=torch.bool)
    groups[0, spans[0]] = True
    groups[1, spans[1]] = True
    groups[2, t - 1] = True
    groups[3] = True
    inject = torch.zeros(len(GROUPS), t, dtype=torch.bool)
    inject[:, spans[1]] = True
    return groups, inject


@torch.no_grad()
def patch_trial(
    model: nn.Module, tokenizer: Any, inj: int, vector: torch.Tensor, sentences: list[str]
) -> list[dict[str, Any]]:
    """One trial: clean and corrupted runs, then the corrupted run patched at every layer
    and group. ``vector`` is already scaled, (d_model,).

    Returns:
        One row per (layer, group): ``layer, group, ld_clean, ld_corrupt, ld_patched``.
    """
    layers = hooks.decoder_layers(model)
    prefix, (one, two) = answer_tokens(tokenizer, 2)
    prompt = build_prompt(tokenizer, sentences, prefix)
    ids, t = prompt.input_ids, len(prompt.input_ids)
    both = torch.zeros(2, t, dtype=torch.bool)  # row 0 clean, row 1 corrupted
    both[0, prompt.spans[0]], both[1, prompt.spans[1]] = True, True
    with hooks.inject(layers[inj], vector, both), hooks.record(layers) as seen:
        logits = model(ids.expand(2, t)).logits[:, -1].float()  # (2, V)
    ld = (logits[:, one] - logits[:, two]).tolist()
    groups, inject = _masks(prompt.spans, t)
    rows = []
    for ell, layer in enumerate(layers):
        with hooks.inject(layers[inj], vector, inject), hooks.patch(layer, seen[ell][0], groups):
            lg = model(ids.expand(len(GROUPS), t)).logits[:, -1].float()  # (G, V)
        for g, name in enumerate(GROUPS):
            rows.append({"layer": ell, "group": name, "ld_clean": ld[0], "ld_corrupt": ld[1],
                         "ld_patched": float(lg[g, one] - lg[g, two])})  # fmt: skip
    return rows


def evaluate_patching(
    model: nn.Module,
    tokenizer: Any,
    *,
    layer: int,
    scale: float,
    trials: int,
    seed: int,
    data: dict[str, Any],
) -> pd.DataFrame:
    """Run :func:`patch_trial` on ``trials`` random draws of 2 sentences and a concept.

    Returns:
        One row per (trial, layer, group) with ``trial, concept, sentences`` and the
        columns of :func:`patch_trial`.
    """
    block = hooks.decoder_layers(model)[layer]
    rng = np.random.default_rng(seed)
    vectors: dict[int, torch.Tensor] = {}
    rows = []
    for trial in range(trials):
        chosen = rng.choice(len(data["sentences"]), 2, replace=False)
        k = int(rng.integers(len(data["pairs"])))
        if k not in vectors:
            vectors[k] = I.concept_vector(model, tokenizer, block, data["pairs"][k])
        sentences = [data["sentences"][j] for j in chosen]
        meta = {"trial": trial, "concept": data["pairs"][k].get("concept", str(k)),
                "sentences": " | ".join(map(str, chosen))}  # fmt: skip
        rows += [meta | r for r in patch_trial(model, tokenizer, layer, scale * vectors[k],
                                               sentences)]  # fmt: skip
    return pd.DataFrame(rows)


def effects(table: pd.DataFrame) -> pd.DataFrame:
    """Per (layer, group): mean LDs and the normalised effect (NaN if the clean and
    corrupted means are equal)."""
    g = table.groupby(["layer", "group"], sort=True)[["ld_clean", "ld_corrupt", "ld_patched"]]
    out = g.mean().reset_index()
    denom = out["ld_clean"] - out["ld_corrupt"]
    out["effect"] = (out["ld_patched"] - out["ld_corrupt"]) / denom.where(denom != 0)
    return out


def two_sentence_accuracy(table: pd.DataFrame) -> dict[str, Any]:
    """Accuracy of the unpatched runs (clean LD > 0, corrupted LD < 0), its
    Clopper–Pearson 95% interval and the one-sided binomial p-value against 50%."""
    per_trial = table.groupby("trial")[["ld_clean", "ld_corrupt"]].first()
    k = int((per_trial["ld_clean"] > 0).sum() + (per_trial["ld_corrupt"] < 0).sum())
    n = 2 * len(per_trial)
    ci = stats.binomtest(k, n, 0.5).proportion_ci(confidence_level=0.95, method="exact")
    diff = per_trial["ld_clean"] - per_trial["ld_corrupt"]
    return {"predictions": n, "correct": k, "accuracy": k / n, "chance": 0.5,
            "ci95": [float(ci.low), float(ci.high)],
            "p_value": float(stats.binomtest(k, n, 0.5, alternative="greater").pvalue),
            "mean_ld_clean": float(per_trial["ld_clean"].mean()),
            "mean_ld_corrupt": float(per_trial["ld_corrupt"].mean()),
            "mean_ld_difference": float(diff.mean())}  # fmt: skip


def run_patching(
    cfg: I.IntrospectionConfig, folder: Path, *, out: str | Path = "runs"
) -> SweepResult:
    """Load the model in ``folder``, run :func:`evaluate_patching`, write the folder:
    ``config.json``, ``patching.parquet`` (per trial, layer, group), ``effects.parquet|csv``
    (per layer and group) and ``summary.json``.

    Raises:
        ConfigError: bad data, layer out of range, not a causal LM (nothing written).
        StoreError: if ``out`` is not writable.
    """
    data = I.load_data(cfg.data)
    model, tok = I.load_causal_lm(Path(folder))
    n_layers = len(hooks.decoder_layers(model))
    layer = I.parse_layer(cfg.layer, n_layers)
    answer_tokens(tok, 2)
    I.check_context(model, tok, data["sentences"])
    path = I.make_dir(Path(out), cfg.model, "patching")
    atomic.write_json(
        path / "config.json", asdict(cfg) | {"folder": str(folder), "mode": "patching"}
    )
    start = time.perf_counter()
    table = evaluate_patching(model, tok, layer=layer, scale=cfg.scale, trials=cfg.trials,
                              seed=cfg.seed, data=data)  # fmt: skip
    eff = effects(table)
    info = {"sweep": "patching", "model": cfg.model, "layer": layer, "n_layers": n_layers,
            "scale": cfg.scale, "trials": cfg.trials, "seed": cfg.seed,
            "seconds": round(time.perf_counter() - start, 2)}  # fmt: skip
    info |= two_sentence_accuracy(table)
    atomic.write_parquet(path / "patching.parquet", table)
    atomic.write_parquet(path / "effects.parquet", eff)
    atomic.write_text(path / "effects.csv", eff.to_csv(index=False))
    atomic.write_json(path / "summary.json", info)
    return SweepResult(path, info, eff, table)
