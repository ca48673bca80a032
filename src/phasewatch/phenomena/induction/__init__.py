"""Induction heads: the in-context-learning phase change (Olsson et al. 2022).

Sequences of ``n_ctx`` tokens in which a random ``span_len``-token span occurs
``repeats`` times at random places; the model is trained on next-token loss at every
position with fresh data each step. Attention-only transformers with two or more layers
abruptly form induction heads (a previous-token head in layer 0 feeding a prefix-matching,
copying head in layer 1) and the loss on repeated tokens collapses; one-layer models
cannot compose heads and never do (Olsson et al. 2022, arXiv 2209.11895, §"Argument 1"
and the small-model results; Elhage et al. 2021 for the two-layer mechanism).

Two sources for the non-repeated text (``--source``):
    random: i.i.d. uniform tokens; the repeated span has distinct tokens.
    markov: a seeded bigram chain (Dirichlet(``markov_concentration``) rows over the
        vocabulary) for the text and the span: natural-text-like, the model first learns
        the global bigram statistics (a context-free predictor), and the ICL score then
        measures what the context adds beyond them, not a gain over pure noise.

Measures (every eval step, on a fixed held-out set of sequences made of a random block of
``n_ctx // 2`` tokens followed by its repeat — Olsson et al.'s repeated random tokens):
    ``train/loss`` (fixed held-out batch of the training distribution), per-position
    loss ``loss/pos/<i>``, ``icl/score`` (loss at a late minus an early token index,
    scaled from Olsson's 500/50: see :func:`~.induction_scores.icl_positions`),
    ``loss/first_half`` and ``loss/repeated``, and per head ``heads/prefix_matching/LxHy``,
    ``heads/previous_token/LxHy`` and ``heads/copying/LxHy`` (plus ``/max`` over heads).

Presets:
    olsson-2layer: the CPU-scale reproduction of references.md: 2-layer attention-only,
        d_model 48, 4 heads × 12, vocab 128, context 85, a 16-token span repeated twice,
        batch 128, AdamW lr 1e-3 (plus LayerNorm, see :class:`NormedTransformer`), 4.5k
        steps. Seed 0: plateau, then the ICL score falls from -0.3 to -4.0 nats between
        steps 3,000 and 3,500 as all four layer-1 heads become induction heads (seeds 1-2:
        same window within ~200 steps). One thread of a shared 2-core machine: 0.155 s/step,
        12 min for the run (the jump at ~9 min).
    olsson-1layer: the same with one layer, the control: no induction heads, no jump
        (prefix matching <= 0.025, ICL score >= -0.22 nats; 8 min).

Code: the data in :mod:`.data`, the model and its fast forward pass in
:mod:`.model`, the head scores in :mod:`.scores`; this module holds the
config, one seed's task, the whole-run findings and the presets, and re-exports the public
names of the first two.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from phasewatch.config import OnsetRule, TrainConfig
from phasewatch.models import run_with_cache
from phasewatch.phenomena.base import Findings, Preset, register
from phasewatch.phenomena.induction import scores as sc
from phasewatch.phenomena.induction.config import (
    INDUCTION_THRESHOLD,
    PREVIOUS_TOKEN_THRESHOLD,
    InductionConfig,
)
from phasewatch.phenomena.induction.data import (
    STREAM_EVAL,
    STREAM_INIT,
    STREAM_REPEAT,
    STREAM_TRAIN,
    distinct_tokens,
    generator,
    make_batch,
    markov_chain,
    repeated_block,
    sample_text,
)
from phasewatch.phenomena.induction.model import NormedTransformer, fast_logits, next_token_loss

__all__ = [
    "Induction",
    "InductionConfig",
    "InductionTask",
    "NormedTransformer",
    "distinct_tokens",
    "fast_logits",
    "generator",
    "make_batch",
    "markov_chain",
    "next_token_loss",
    "repeated_block",
    "sample_text",
]


# ---- the task -----------------------------------------------------------------------------
def head_name(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


class InductionTask:
    """One seed of an induction run: the model, the data streams and the per-eval measures."""

    def __init__(self, cfg: InductionConfig, train: TrainConfig) -> None:
        self.cfg, self.seed = cfg, train.seed
        self.device = torch.device(train.device)
        g = generator(train.seed, STREAM_INIT)
        self.model = NormedTransformer(cfg.transformer(), layernorm=cfg.layernorm, generator=g)
        self.model.to(self.device)
        self.chain = (
            markov_chain(cfg.vocab, cfg.markov_concentration, train.seed)
            if cfg.source == "markov"
            else None
        )
        val = make_batch(cfg, cfg.eval_batch, generator(train.seed, STREAM_EVAL), self.chain)[0]
        self.val_tokens = val.to(self.device)
        self.rep_tokens = repeated_block(
            cfg, cfg.eval_batch, generator(train.seed, STREAM_REPEAT), self.chain
        ).to(self.device)
        self.early, self.late = sc.icl_positions(cfg.n_ctx)
        self._patterns = [f"blocks.{i}.attn.hook_pattern" for i in range(cfg.n_layers)]

    def batch(self, step: int) -> Int[Tensor, "batch n_ctx"]:
        """The training batch of update ``step``: a function of (seed, step) only."""
        g = generator(self.seed, STREAM_TRAIN, step)
        return make_batch(self.cfg, self.cfg.batch_size, g, self.chain)[0].to(self.device)

    def train_loss(self, step: int) -> Tensor:
        tokens = self.batch(step)
        return next_token_loss(fast_logits(self.model, tokens), tokens)

    def train_batch(self, step: int) -> tuple[Int[Tensor, "batch n_ctx"]]:
        """For batched seeds: the tokens of update ``step`` (see :meth:`batch`)."""
        return (self.batch(step),)

    def loss_on(self, tokens: Int[Tensor, "batch n_ctx"]) -> Tensor:
        """Mean next-token loss (nats) of ``tokens`` under ``self.model``."""
        return next_token_loss(fast_logits(self.model, tokens), tokens)

    def per_sample_loss(self, step: int) -> Float[Tensor, " batch"]:
        """Per-sequence mean next-token loss (nats) of batch ``step``; its mean is
        ``train_loss(step)`` (for the signals' probe size n and gradient noise scale)."""
        tokens = self.batch(step)
        logits = fast_logits(self.model, tokens)[:, :-1]  # (B, T-1, V)
        nll = F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")
        return nll.mean(-1)

    def probe_inputs(self, step: int) -> Int[Tensor, "batch n_ctx"]:
        """The model inputs of batch ``step`` (``model(tokens)`` fires every hook point)."""
        return self.batch(step)

    @torch.no_grad()
    def repeat_measures(self) -> tuple[Tensor, list[Tensor], list[Tensor], list[Tensor]]:
        """On the repeated-block set: per-position loss (T-1,) and, per layer, the
        prefix-matching, previous-token and copying scores (head,)."""
        logits, cache = run_with_cache(self.model, self.rep_tokens, names=self._patterns)
        losses = sc.per_position_loss(logits, self.rep_tokens)
        pm = [sc.prefix_matching_score(cache[n], self.rep_tokens) for n in self._patterns]
        pt = [sc.previous_token_score(cache[n]) for n in self._patterns]
        return losses, pm, pt, self.copying()

    def copying(self) -> list[Tensor]:
        """Per layer, the copying score (head,) of each head's direct OV circuit; with
        LayerNorm its centring is folded into ``W_E`` and ``W_U`` (its per-token positive
        scale does not change which tokens a head boosts and is ignored)."""
        m = self.model
        W_E, W_U = m.embed.W_E, m.unembed.W_U
        if self.cfg.layernorm:
            W_E, W_U = W_E - W_E.mean(-1, keepdim=True), W_U - W_U.mean(0, keepdim=True)
        return [sc.copying_score(W_E, b.attn.W_V, b.attn.W_O, W_U) for b in m.blocks]

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        out: dict[str, float] = {}
        val = fast_logits(self.model, self.val_tokens)
        out["train/loss"] = float(next_token_loss(val, self.val_tokens))
        losses, pm, pt, cp = self.repeat_measures()
        h = self.cfg.n_ctx // 2
        out["icl/score"] = sc.icl_score(losses, self.early, self.late)
        out["loss/first_half"] = float(losses[: h - 1].mean())
        out["loss/repeated"] = float(losses[h:].mean())
        for i, v in enumerate(losses.tolist()):
            out[f"loss/pos/{i}"] = v
        for name, per_layer in (("prefix_matching", pm), ("previous_token", pt), ("copying", cp)):
            for layer, scores in enumerate(per_layer):
                for head, v in enumerate(scores.tolist()):
                    out[f"heads/{name}/{head_name(layer, head)}"] = v
            out[f"heads/{name}/max"] = float(torch.cat(per_layer).max())
        return out


# ---- whole-run findings ---------------------------------------------------------------
def _scores_at(task: InductionTask, state: dict[str, Tensor]) -> dict[str, Any]:
    task.model.load_state_dict(state)
    losses, pm, pt, cp = task.repeat_measures()
    return {
        "icl": sc.icl_score(losses, task.early, task.late),
        "pm": torch.stack(pm),  # (L, H)
        "pt": torch.stack(pt),
        "cp": torch.stack(cp),
    }


def _attention_rows(task: InductionTask, layer: int, head: int) -> pd.DataFrame:
    """One head's causal attention on the first repeated-block sequence (long table)."""
    name = f"blocks.{layer}.attn.hook_pattern"
    _, cache = run_with_cache(task.model, task.rep_tokens[:1], names=[name])
    return sc.attention_table(cache[name][0, head].cpu(), task.rep_tokens[0].cpu())


_SCORE_NAMES = {"pm": "prefix_matching", "pt": "previous_token", "cp": "copying"}


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


# AdamW as in torch's defaults (betas 0.9/0.999, weight decay 0.01), lr 1e-3, no warm-up.
_OLSSON_TRAIN = TrainConfig(
    steps=4_500,
    lr=1e-3,
    weight_decay=0.01,
    beta1=0.9,
    beta2=0.999,
    warmup_steps=0,
    eval_every=50,
    checkpoint_every=50,
)


class Induction:
    """The induction-heads phenomenon (registered as ``induction``)."""

    name = "induction"
    config_cls = InductionConfig
    # batched seeds: fields that change only the data, not any tensor's shape
    batch_fields = ("source", "markov_concentration", "span_len", "repeats")
    default_preset = "olsson-2layer"
    onsets = (
        OnsetRule(
            "previous_token_head",
            "heads/previous_token/max",
            "cross",
            ">=",
            PREVIOUS_TOKEN_THRESHOLD,
        ),
        OnsetRule(
            "induction_head", "heads/prefix_matching/max", "cross", ">=", INDUCTION_THRESHOLD
        ),
        # in nats; the 1-layer control stays above -0.25, olsson-2layer ends near -4.3
        OnsetRule("icl_jump", "icl/score", "cross", "<=", -1.0),
    )
    presets = {
        "olsson-2layer": Preset(
            task=InductionConfig(),
            train=_OLSSON_TRAIN,
            description="2-layer attention-only, d_model 48, 4x12 heads, vocab 128, ctx 85, "
            "16-token span x2, batch 128, AdamW lr 1e-3, 4.5k steps",
        ),
        "olsson-1layer": Preset(
            task=InductionConfig(n_layers=1),
            train=_OLSSON_TRAIN,
            description="the 1-layer control of olsson-2layer: no induction heads, no ICL jump",
        ),
    }

    def build(self, cfg: InductionConfig, train: TrainConfig) -> InductionTask:
        return InductionTask(cfg, train)

    def checkpoint_measures(
        self,
        cfg: InductionConfig,
        train: TrainConfig,
        checkpoints: Iterator[tuple[int, dict[str, Tensor]]],
        final: dict[str, Tensor],
    ) -> Findings:
        """Phase-change steps, the induction heads and the top head's attention before/after.

        Per stored checkpoint, the ICL score and the per-head scores are recomputed on the
        fixed repeated-block set; transitions are located with
        :func:`~.induction_scores.transition_steps` (so their resolution is
        ``checkpoint_every``). The top induction head is the final model's head with the
        largest prefix-matching score; its attention on one repeated sequence is tabled at
        the last checkpoint before its prefix-matching transition starts and at the end.
        """
        task = InductionTask(cfg, train)
        end = _scores_at(task, final)
        layer, head = divmod(int(end["pm"].argmax()), cfg.n_heads)
        steps: list[int] = []
        hist: list[dict[str, Any]] = []
        states: dict[int, dict[str, Tensor]] = {}  # small models: keep them for the tables
        for step, state in checkpoints:
            steps.append(step)
            states[step] = state
            hist.append(_scores_at(task, state))
        icl = sc.transition_steps(
            steps, [h["icl"] for h in hist], min_change=0.1 * float(np.log(cfg.vocab))
        )
        top_pm = [float(h["pm"][layer, head]) for h in hist]
        pm_max = [float(h["pm"].max()) for h in hist]
        pt_max = [float(h["pt"].max()) for h in hist]
        head_tr = sc.transition_steps(steps, top_pm, min_change=0.2)
        start = head_tr["start"]
        before = max((s for s in steps if start is not None and s < start), default=steps[0])
        parts = []
        for phase, step in (("before", before), ("after", steps[-1])):
            task.model.load_state_dict(states[step])
            parts.append(_attention_rows(task, layer, head).assign(phase=phase, step=step))
        tables = {"attention_top_head": pd.concat(parts, ignore_index=True)}
        events: dict[str, Any] = {
            "icl_positions": {
                "early": task.early,
                "late": task.late,
                "n_ctx": cfg.n_ctx,
                "rule": "loss at token index late minus early on held-out repeated blocks; "
                "late = round(0.8 * (n_ctx - 1)), early = round(late * 50 / 500) "
                "(Olsson et al. 2022: indices 500 and 50)",
            },
            "phase_change": {
                "icl_score": icl,
                "prefix_matching_max": sc.transition_steps(steps, pm_max, min_change=0.2),
                "previous_token_max": sc.transition_steps(steps, pt_max, min_change=0.2),
                "top_head_prefix_matching": head_tr,
                "rule": "start/mid/end = first checkpoint covering 10/50/90% of the change "
                "from the first checkpoint to the extreme value",
            },
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
        return Findings(rows=[], events=events, tables=tables)


register(Induction())
