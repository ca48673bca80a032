"""Thought-injection localization: can a model tell in which listed sentence a concept
vector was added to its residual stream?

Protocol (issue 17; reported: the ability appears around 1B parameters, layer at 25% of
depth, scale 10, 100 trials × 5 predictions): each trial draws 5 of the shipped 100
sentences and one of the 50 contrastive pairs. The concept vector is the difference of
the residual stream at the last token between the pair's two prompts, at the injection
layer (:mod:`phasewatch.evals.hooks`): :math:`v = h_\\ell(x^+)_{-1} - h_\\ell(x^-)_{-1}`.
For each of the 5 sentences, :math:`s \\cdot v` is added to the output of decoder layer
:math:`\\ell` at every token of that sentence of the prompt
(:mod:`phasewatch.evals.transcript`), and the model's guess is the digit 1-5 with the
largest next-token logit after "It is located in SENTENCE". Every sentence is injected
once per trial, so a model that ignores the injection scores exactly 20%. Accuracy is
reported with a Clopper–Pearson 95% interval and a one-sided binomial test against 20%.

Writes one folder per evaluation::

    <out>/eval-introspection-<model>-<time>/
      config.json          the settings (model, layer, scale, trials, seed, data)
      predictions.parquet  one row per prediction (trial, concept, injected, guess, ...)
      predictions.csv      the same table
      summary.json         accuracy, 95% interval, p-value, chance, layer, timings
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

from phasewatch.config import require
from phasewatch.errors import ConfigError, StoreError
from phasewatch.evals import hooks
from phasewatch.evals.transcript import answer_tokens, build_prompt
from phasewatch.store import atomic

N_LISTED = 5  # sentences per prompt (the protocol's)


@dataclass(frozen=True)
class IntrospectionConfig:
    """Settings of one evaluation (the CLI's flags).

    Attributes:
        model: ``smollm2``, a ``.gguf`` file or a local Hugging Face folder.
        layer: injection layer: an index (``"7"``) or a fraction of depth (``"0.25"``).
        scale: multiplier of the concept vector (> 0).
        trials: trials of 5 predictions each (>= 1).
        seed: seeds the draw of sentences and concepts (>= 0).
        data: a JSON file of ``sentences`` and ``pairs`` (None: the shipped data).
    """

    model: str
    layer: str = "0.25"
    scale: float = 10.0
    trials: int = 100
    seed: int = 0
    data: str | None = None

    def __post_init__(self) -> None:
        require(self.scale > 0, "--scale", "a float > 0", self.scale)
        require(self.trials >= 1, "--trials", "an integer >= 1", self.trials)
        require(self.seed >= 0, "--seed", "an integer >= 0", self.seed)
        ok = bool(re.fullmatch(r"\d+|0?\.\d+", self.layer.strip()))
        require(ok, "--layer", "an index (e.g. 7) or a fraction of depth in [0, 1)", self.layer)


def load_data(path: str | Path | None = None) -> dict[str, Any]:
    """Sentences and contrastive pairs: the shipped ``data/introspection.json`` or ``path``.

    Raises:
        ConfigError: naming ``--data`` for an unreadable file, fewer than 5 sentences, no
            pair, or a pair without ``positive``/``negative``.
    """
    try:
        if path is None:
            shipped = resources.files("phasewatch.evals").joinpath("data/introspection.json")
            data = json.loads(shipped.read_text())
        else:
            data = json.loads(Path(path).read_text())
        sentences, pairs = list(data["sentences"]), list(data["pairs"])
        ok = all(isinstance(p["positive"], str) and isinstance(p["negative"], str) for p in pairs)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"--data={str(path)!r} is invalid: {e}") from None
    require(len(set(sentences)) >= N_LISTED, "--data", "at least 5 distinct sentences",
            f"{path} ({len(set(sentences))} sentences)")  # fmt: skip
    require(bool(pairs) and ok, "--data", "pairs with positive and negative prompts", path)
    return {"sentences": sentences, "pairs": pairs}


def parse_layer(text: str, n_layers: int) -> int:
    """The layer index of ``--layer``: an index, or a fraction ``f`` → ``floor(f · n)``.

    Raises:
        ConfigError: naming ``--layer`` with the allowed range.
    """
    allowed = f"an index in 0..{n_layers - 1} or a fraction of depth in [0, 1)"
    try:
        value = float(text) if "." in text else int(text)
    except ValueError:
        value = -1
    fraction = "." in text and value < 1
    index = int(value * n_layers) if fraction else int(value)
    require(0 <= value and 0 <= index < n_layers and ("." not in text or fraction),
            "--layer", allowed, text)  # fmt: skip
    return index


def last_token_state(model: nn.Module, layer: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The output of decoder ``layer`` at the last token of ``ids`` (T,), (d_model,)."""
    with hooks.record([layer]) as seen:
        model(ids[None])
    return seen[0][0, -1]


def concept_vector(model: nn.Module, tokenizer: Any, layer: nn.Module, pair: dict) -> torch.Tensor:
    """:math:`h_\\ell(x^+)_{-1} - h_\\ell(x^-)_{-1}` for a pair's prompts, (d_model,)."""
    pos, neg = (torch.tensor(tokenizer.encode(pair[k])) for k in ("positive", "negative"))
    return last_token_state(model, layer, pos) - last_token_state(model, layer, neg)


def _trial_rows(model, tokenizer, layer, vector, sentences, prefix, digits) -> list[dict]:
    """One batch: row 0 without injection (the baseline guess), rows 1..5 injected."""
    prompt = build_prompt(tokenizer, sentences, prefix)
    n, t = len(sentences), len(prompt.input_ids)
    mask = torch.zeros(n + 1, t, dtype=torch.bool)  # (B, T)
    for i, span in enumerate(prompt.spans):
        mask[i + 1, span] = True
    with hooks.inject(layer, vector, mask):
        logits = model(prompt.input_ids.expand(n + 1, t)).logits[:, -1].float()  # (B, V)
    probs = logits.softmax(-1)
    guesses = logits[:, digits].argmax(-1) + 1  # (B,)
    mass = probs[:, digits].sum(-1)
    rows = []
    for i in range(1, n + 1):
        p_correct, p_digits = float(probs[i, digits[i - 1]]), float(mass[i])
        rows.append({
            "injected": i, "guess": int(guesses[i]), "correct": bool(guesses[i] == i),
            "baseline_guess": int(guesses[0]), "p_correct": p_correct, "p_digits": p_digits,
            "p_correct_in_digits": p_correct / max(p_digits, 1e-30),
            "top_token": tokenizer.decode([int(logits[i].argmax())]),
            "n_tokens": len(prompt.spans[i - 1]), "template": prompt.template,
        })  # fmt: skip
    return rows


@torch.no_grad()
def evaluate(
    model: nn.Module,
    tokenizer: Any,
    *,
    layer: int,
    scale: float,
    trials: int,
    seed: int,
    data: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Run the protocol on a loaded causal LM; one row per prediction (``trials × 5``).

    Args:
        model: a Hugging Face causal LM (eval mode).
        tokenizer: its fast tokenizer.
        layer: injection layer index; scale, trials, seed: as :class:`IntrospectionConfig`.
        data: sentences and pairs (default :func:`load_data`).

    Returns:
        Columns ``trial, concept, sentences, injected, guess, correct, baseline_guess,
        p_correct, p_digits, p_correct_in_digits, top_token, n_tokens, template``.
    """
    data = data or load_data()
    layers = hooks.decoder_layers(model)
    block = layers[layer]
    prefix, digits = answer_tokens(tokenizer, N_LISTED)
    rng = np.random.default_rng(seed)
    vectors: dict[int, torch.Tensor] = {}
    rows = []
    for trial in range(trials):
        chosen = rng.choice(len(data["sentences"]), N_LISTED, replace=False)
        k = int(rng.integers(len(data["pairs"])))
        if k not in vectors:
            vectors[k] = concept_vector(model, tokenizer, block, data["pairs"][k])
        sentences = [data["sentences"][j] for j in chosen]
        for row in _trial_rows(model, tokenizer, block, scale * vectors[k], sentences,
                               prefix, digits):  # fmt: skip
            meta = {"trial": trial, "concept": data["pairs"][k].get("concept", str(k))}
            rows.append(meta | {"sentences": " | ".join(map(str, chosen))} | row)
    return pd.DataFrame(rows)


def summarise(pred: pd.DataFrame, chance: float = 1 / N_LISTED) -> dict[str, Any]:
    """Accuracy, its (two-sided) Clopper–Pearson 95% interval, the one-sided binomial
    p-value of ``accuracy > chance``, and the mean probability of the correct digit (a
    smooth metric, as in the mirage analysis)."""
    k, n = int(pred["correct"].sum()), len(pred)
    test = stats.binomtest(k, n, chance, alternative="greater")
    ci = stats.binomtest(k, n, chance).proportion_ci(confidence_level=0.95, method="exact")
    return {
        "predictions": n,
        "correct": k,
        "accuracy": k / n,
        "ci95": [float(ci.low), float(ci.high)],
        "chance": chance,
        "p_value": float(test.pvalue),
        "test": "binomial, one-sided (accuracy > chance)",
        "mean_p_correct": float(pred["p_correct"].mean()),
        "mean_p_correct_in_digits": float(pred["p_correct_in_digits"].mean()),
    }


def load_causal_lm(folder: Path) -> tuple[nn.Module, Any]:
    """Model (float32, eval mode) and tokenizer of a local Hugging Face folder.

    Raises:
        ConfigError: naming ``--model`` if the folder's architecture is not a causal LM.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    config = AutoConfig.from_pretrained(folder)
    archs = getattr(config, "architectures", None) or []
    causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
    require(causal, "--model", "a causal language model (…ForCausalLM, …LMHeadModel)",
            f"{folder} ({', '.join(archs) or 'no architecture'})")  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(folder)


def check_context(model: nn.Module, tokenizer: Any, sentences: list[str]) -> None:
    """ConfigError naming ``--model`` if the longest prompt exceeds the model's context."""
    prefix, _ = answer_tokens(tokenizer, N_LISTED)
    longest = sorted(sentences, key=len)[-N_LISTED:]
    n = len(build_prompt(tokenizer, longest, prefix).input_ids)
    cfg = model.config
    limit = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    require(limit is None or n <= limit, "--model", f"a context of at least {n} tokens",
            f"{cfg.model_type} with {limit} positions")  # fmt: skip


def make_dir(out: Path, name: str, kind: str = "") -> Path:
    """A new folder ``<out>/eval-introspection[-<kind>]-<name>-<time>`` (the name's last
    60 characters).

    Raises:
        StoreError: naming ``--out`` if it is not writable.
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[-60:] or "model"
    prefix = f"eval-introspection-{kind}-" if kind else "eval-introspection-"
    base = out / f"{prefix}{slug}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    try:
        out.mkdir(parents=True, exist_ok=True)
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        path.mkdir()
    except OSError as e:
        raise StoreError(f"--out {out}: not writable ({e.strerror})") from None
    return path


@dataclass
class IntrospectionResult:
    """The folder written, its summary and the per-prediction table."""

    path: Path
    summary: dict[str, Any]
    predictions: pd.DataFrame


def run_introspection(
    cfg: IntrospectionConfig, folder: Path, *, out: str | Path = "runs"
) -> IntrospectionResult:
    """Load the model in ``folder``, run :func:`evaluate`, write the evaluation folder.

    Raises:
        ConfigError: bad data, layer out of range, not a causal LM (nothing written).
        StoreError: if ``out`` is not writable.
    """
    data = load_data(cfg.data)
    model, tok = load_causal_lm(Path(folder))
    n_layers = len(hooks.decoder_layers(model))
    layer = parse_layer(cfg.layer, n_layers)
    check_context(model, tok, data["sentences"])  # fails before a folder is made
    path = make_dir(Path(out), cfg.model)
    atomic.write_json(path / "config.json", asdict(cfg) | {"folder": str(folder)})
    start = time.perf_counter()
    pred = evaluate(model, tok, layer=layer, scale=cfg.scale, trials=cfg.trials,
                    seed=cfg.seed, data=data)  # fmt: skip
    summary = {"model": cfg.model, "folder": str(folder), "layer": layer,
               "n_layers": n_layers, "layer_fraction": layer / n_layers, "scale": cfg.scale,
               "parameters": sum(p.numel() for p in model.parameters()),
               "template": str(pred["template"].iloc[0])} | summarise(pred)  # fmt: skip
    summary["seconds"] = round(time.perf_counter() - start, 2)
    atomic.write_parquet(path / "predictions.parquet", pred)
    atomic.write_text(path / "predictions.csv", pred.to_csv(index=False))
    atomic.write_json(path / "summary.json", summary)
    return IntrospectionResult(path, summary, pred)
