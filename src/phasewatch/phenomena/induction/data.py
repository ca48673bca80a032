"""The data of the induction-heads task (Olsson et al. 2022): the numbers of its random
streams (:func:`phasewatch.phenomena.streams.generator`), the bigram chain, training
sequences with a repeated span and the repeated-block evaluation sequences. The
phenomenon is :mod:`phasewatch.phenomena.induction`.
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange
from jaxtyping import Float, Int
from torch import Tensor

from phasewatch.phenomena.induction.config import InductionConfig

# Random-number streams of phasewatch.phenomena.streams.generator(seed, stream, step).
STREAM_TRAIN, STREAM_EVAL, STREAM_REPEAT, STREAM_INIT, STREAM_CHAIN = range(5)


def markov_chain(vocab: int, concentration: float, seed: int) -> Float[Tensor, "vocab vocab"]:
    """Seeded bigram transition matrix ``P[a, b] = p(next = b | current = a)``; rows are
    Dirichlet(``concentration``) draws (float64)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, STREAM_CHAIN]))
    rows = rng.dirichlet(np.full(vocab, concentration), size=vocab)
    return torch.from_numpy(rows)


def sample_text(
    batch: int,
    n: int,
    vocab: int,
    g: torch.Generator,
    chain: Float[Tensor, "vocab vocab"] | None = None,
) -> Int[Tensor, "batch n"]:
    """``batch`` sequences of ``n`` tokens: uniform i.i.d. if ``chain`` is None, else a walk
    of the bigram ``chain`` from a uniform first token (inverse-CDF sampling)."""
    if chain is None:
        return torch.randint(0, vocab, (batch, n), generator=g)
    cdf = chain.cumsum(-1)  # (V, V)
    u = torch.rand(n, batch, 1, generator=g, dtype=torch.float64)  # (n, B, 1)
    out = torch.empty(n, batch, dtype=torch.long)
    out[0] = (u[0, :, 0] * vocab).long().clamp_max(vocab - 1)
    for t in range(1, n):
        out[t] = torch.searchsorted(cdf[out[t - 1]], u[t])[:, 0].clamp_max(vocab - 1)  # (B,)
    return out.T.contiguous()


def distinct_tokens(batch: int, n: int, vocab: int, g: torch.Generator) -> Int[Tensor, "batch n"]:
    """``batch`` rows of ``n`` distinct uniform tokens (``n <= vocab``)."""
    return torch.rand(batch, vocab, generator=g).argsort(-1)[:, :n]


def make_batch(
    cfg: InductionConfig,
    batch: int,
    g: torch.Generator,
    chain: Float[Tensor, "vocab vocab"] | None = None,
) -> tuple[Int[Tensor, "batch n_ctx"], Int[Tensor, "batch repeats"]]:
    """Training sequences: text with a span of ``span_len`` tokens written ``repeats`` times.

    The copies do not overlap and lie inside the context; their starts are uniform over
    all such layouts (sorted cut points in the ``n_ctx - repeats · span_len`` free
    tokens). So the last few positions are rarely inside a repeat (for olsson-2layer the
    final token only when the second copy ends exactly there) and trained models discount
    induction there; :func:`~.scores.icl_positions` keeps away from them. (Letting
    the last copy run past the end removes that, but on seed 0 stretched the plateau past
    4,500 steps instead of ~3,300.) The span is distinct uniform tokens (random source) or
    a chain sample (markov source).

    Returns:
        ``(tokens, starts)``: tokens (batch, n_ctx) int64 and the start index of each
        copy (batch, repeats), ascending.
    """
    L, R, T = cfg.span_len, cfg.repeats, cfg.n_ctx
    tokens = sample_text(batch, T, cfg.vocab, g, chain)
    if chain is None:
        span = distinct_tokens(batch, L, cfg.vocab, g)
    else:
        span = sample_text(batch, L, cfg.vocab, g, chain)
    free = T - R * L
    cuts = torch.randint(0, free + 1, (batch, R), generator=g).sort(-1).values
    starts = cuts + torch.arange(R) * L  # (B, R)
    idx = rearrange(starts[..., None] + torch.arange(L), "b r l -> b (r l)")  # (B, R*L)
    tokens.scatter_(1, idx, span.repeat(1, R))
    return tokens, starts


def repeated_block(
    cfg: InductionConfig,
    batch: int,
    g: torch.Generator,
    chain: Float[Tensor, "vocab vocab"] | None = None,
) -> Int[Tensor, "batch n_ctx"]:
    """Evaluation sequences: a block of ``n_ctx // 2`` tokens followed by its repeat
    (tiled, truncated to ``n_ctx``), as in Olsson et al.'s repeated random tokens. Block
    tokens are distinct when the vocabulary allows (random source) or a chain sample."""
    h = cfg.n_ctx // 2
    if chain is not None:
        block = sample_text(batch, h, cfg.vocab, g, chain)
    elif cfg.vocab >= h:
        block = distinct_tokens(batch, h, cfg.vocab, g)
    else:
        block = sample_text(batch, h, cfg.vocab, g)
    reps = -(-cfg.n_ctx // h)
    return block.repeat(1, reps)[:, : cfg.n_ctx]
