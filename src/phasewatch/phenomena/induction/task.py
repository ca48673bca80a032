"""One seed of an induction-heads run: the model, its data streams, the next-token loss and
the measures of every eval step (Olsson et al. 2022, arXiv 2209.11895).

The phenomenon (presets, whole-run findings) is :mod:`phasewatch.phenomena.induction`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from phasewatch.config import TrainConfig
from phasewatch.models import NormedTransformer, fast_logits, run_with_cache
from phasewatch.phenomena.induction import scores as sc
from phasewatch.phenomena.induction.config import InductionConfig
from phasewatch.phenomena.induction.data import (
    STREAM_EVAL,
    STREAM_INIT,
    STREAM_REPEAT,
    STREAM_TRAIN,
    make_batch,
    markov_chain,
    repeated_block,
)
from phasewatch.phenomena.streams import generator

PROBE_ROWS = 512
"""At most this many (sequence, position) rows in :meth:`InductionTask.probe_logits`."""


def head_name(layer: int, head: int) -> str:
    """The metric name of a head: ``L<layer>H<head>`` (``L1H3``), both counted from 0."""
    return f"L{layer}H{head}"


def next_token_loss(
    logits: Float[Tensor, "batch pos vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, ""]:
    """Mean next-token cross-entropy (nats) over every position and sequence: the logits at
    position ``i`` predict ``tokens[:, i + 1]`` (training hot path: a plain ``flatten``)."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())


class InductionTask:
    """One seed of an induction run: the model, the data streams and the per-eval measures.

    Args:
        cfg: the run's data and model.
        train: the training loop's config (its ``seed`` and ``device`` are read).
    """

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

    def train_loss(self, step: int) -> Float[Tensor, ""]:
        """Mean next-token loss (nats) of the training batch of update ``step``."""
        tokens = self.batch(step)
        return next_token_loss(fast_logits(self.model, tokens), tokens)

    def train_batch(self, step: int) -> tuple[Int[Tensor, "batch n_ctx"]]:
        """For batched seeds: the tokens of update ``step`` (see :meth:`batch`)."""
        return (self.batch(step),)

    def loss_on(self, tokens: Int[Tensor, "batch n_ctx"]) -> Float[Tensor, ""]:
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

    def _probe_rows(self, step: int) -> Int[Tensor, "seqs n_ctx"]:
        """The first sequences of batch ``step`` whose next-token predictions fit in
        ``PROBE_ROWS`` rows (at least one sequence)."""
        return self.batch(step)[: max(1, PROBE_ROWS // (self.cfg.n_ctx - 1))]

    def probe_logits(
        self, step: int, rows: Int[Tensor, " m"] | None = None
    ) -> Float[Tensor, "rows vocab"]:
        """Next-token logits of batch ``step``, flattened over (sequence, position): row
        ``s·(n_ctx − 1) + i`` predicts ``tokens[s, i + 1]``; capped at ``PROBE_ROWS`` rows
        (whole sequences from the first) so that per-row signals stay cheap. With
        ``rows``, only those rows (only their sequences are run)."""
        tokens = self._probe_rows(step)
        if rows is None:
            return fast_logits(self.model, tokens)[:, :-1].flatten(0, 1)  # (S·(T−1), V)
        rows = rows.to(tokens.device)
        seqs, which = torch.unique(rows // (self.cfg.n_ctx - 1), return_inverse=True)
        logits = fast_logits(self.model, tokens[seqs])  # (S', T, V)
        return logits[which, rows % (self.cfg.n_ctx - 1)]  # (m, V)

    def probe_targets(self, step: int) -> Int[Tensor, " rows"]:
        """The next tokens that the rows of :meth:`probe_logits` predict."""
        tokens = self._probe_rows(step)
        return tokens[:, 1:].flatten()

    @torch.no_grad()
    def repeat_measures(
        self,
    ) -> tuple[
        Float[Tensor, " pos_minus_1"],
        list[Float[Tensor, " head"]],
        list[Float[Tensor, " head"]],
        list[Float[Tensor, " head"]],
    ]:
        """On the repeated-block set: per-position loss (nats, shape (n_ctx - 1,)) and, per
        layer, the prefix-matching, previous-token and copying scores (shape (head,)) of
        Olsson et al. 2022, §"Key Concepts" (see :mod:`.scores`)."""
        logits, cache = run_with_cache(self.model, self.rep_tokens, names=self._patterns)
        losses = sc.per_position_loss(logits, self.rep_tokens)
        pm = [sc.prefix_matching_score(cache[n], self.rep_tokens) for n in self._patterns]
        pt = [sc.previous_token_score(cache[n]) for n in self._patterns]
        return losses, pm, pt, self.copying()

    def copying(self) -> list[Float[Tensor, " head"]]:
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
        """The metrics of one eval step (losses in nats; keys in the package docstring):
        ``train/loss`` on the fixed held-out batch, the ICL score, first-half and repeated
        loss, ``loss/pos/<i>`` and the per-head scores ``heads/<score>/LxHy`` and ``/max``."""
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
