"""Pure scores for induction heads: attention patterns and weights in, numbers out.

Definitions follow Olsson et al. 2022, "In-context learning and induction heads"
(transformer-circuits.pub; arXiv 2209.11895), §"Key Concepts": an induction head shows
*prefix matching* (on repeated random tokens it attends to the token that followed an
earlier copy of the current token) and *copying* (its output raises the logit of the
token it attends to). The copying statistic is the eigenvalue summary of the OV circuit
from Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits",
§"Copying / Primitive In-Context Learning" (detecting copying via positive eigenvalues),
which Olsson et al. use for their small attention-only models.

Every function here is side-effect free and takes plain tensors, so it can be tested on
hand-built patterns and matrices with known answers.
"""

from __future__ import annotations

import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

# Olsson et al. 2022 measure in-context learning as loss(token 500) - loss(token 50).
OLSSON_EARLY, OLSSON_LATE = 50, 500


def induction_targets(tokens: Int[Tensor, "batch pos"]) -> Bool[Tensor, "batch pos pos"]:
    """Where an induction head should attend: ``mask[b, q, k]`` is True iff ``1 <= k <= q``
    and ``tokens[b, k - 1] == tokens[b, q]`` — key ``k`` is the token right after an earlier
    occurrence (at ``k - 1 < q``) of the query's token.

    Args:
        tokens: token ids, shape (batch, pos).

    Returns:
        Boolean mask, shape (batch, query_pos, key_pos); causal (no ``k > q``).
    """
    t = tokens.shape[1]
    mask = torch.zeros(tokens.shape[0], t, t, dtype=torch.bool, device=tokens.device)
    # (B, T, T-1): query token q equals token at k-1 for k = 1..T-1
    same = tokens[:, :, None] == tokens[:, None, :-1]
    mask[:, :, 1:] = same
    causal = torch.tril(torch.ones(t, t, dtype=torch.bool, device=tokens.device))
    return mask & causal


def prefix_matching_score(
    pattern: Float[Tensor, "batch head query key"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, " head"]:
    r"""Per-head prefix-matching score (Olsson et al. 2022, §"Key Concepts").

    For every query position ``q`` that has at least one induction target (see
    :func:`induction_targets`), the attention mass the head puts on those targets,
    averaged over such queries and the batch:

    .. math:: \mathrm{PM}_h = \operatorname{mean}_{(b,q):\,|T_{bq}|>0}
              \sum_{k \in T_{bq}} A^h_{b,q,k}

    A perfect induction head scores 1; a head attending uniformly over the causal window
    scores the mean of ``|T_bq| / (q + 1)`` (about 1/position with one earlier copy).

    Args:
        pattern: attention probabilities, shape (batch, head, query_pos, key_pos), rows
            summing to 1 over the causal window (``blocks.{l}.attn.hook_pattern``).
        tokens: the input tokens, shape (batch, pos); typically a random block repeated.

    Returns:
        Scores in [0, 1], shape (head,); NaN if no query has a target.
    """
    targets = induction_targets(tokens)  # (B, T, T)
    mass = torch.einsum("bhqk,bqk->bhq", pattern, targets.to(pattern.dtype))  # (B, H, T)
    has = targets.any(-1)  # (B, T)
    n = has.sum()
    if n == 0:
        return torch.full((pattern.shape[1],), float("nan"), dtype=pattern.dtype)
    return (mass * has[:, None, :]).sum(dim=(0, 2)) / n


def previous_token_score(pattern: Float[Tensor, "batch head query key"]) -> Float[Tensor, " head"]:
    r"""Per-head previous-token score: mean attention from position ``q`` to ``q - 1``.

    .. math:: \mathrm{PT}_h = \operatorname{mean}_{b,\,q \ge 1} A^h_{b,q,q-1}

    Previous-token heads in an earlier layer supply the shifted keys that induction heads
    match against (K-composition; Elhage et al. 2021, §"Induction Heads"; Olsson et al.
    2022, §"Key Concepts"). A perfect previous-token head scores 1; a uniform head scores
    ``mean_q 1 / (q + 1)``.

    Args:
        pattern: attention probabilities, shape (batch, head, query_pos, key_pos).

    Returns:
        Scores in [0, 1], shape (head,).
    """
    sub = torch.diagonal(pattern, offset=-1, dim1=-2, dim2=-1)  # (B, H, T-1): A[q, q-1]
    return sub.mean(dim=(0, 2))


def ov_circuit_eigenvalues(
    W_E: Float[Tensor, "vocab d_model"],
    W_V: Float[Tensor, "head d_model d_head"],
    W_O: Float[Tensor, "head d_head d_model"],
    W_U: Float[Tensor, "d_model vocab"],
) -> Float[Tensor, "head d_head"]:
    """Eigenvalues (complex) of each head's full OV circuit ``W_E W_V^h W_O^h W_U``.

    The (vocab, vocab) matrix has rank <= d_head; its non-zero eigenvalues equal those of
    the (d_head, d_head) matrix ``W_O^h W_U W_E W_V^h`` (eig(AB) = eig(BA) away from 0),
    which is what is decomposed (float64).

    Raises:
        ValueError: if the input and output vocabularies differ (no square circuit).
    """
    if W_E.shape[0] != W_U.shape[1]:
        raise ValueError(
            f"OV circuit needs equal input/output vocabularies, got {W_E.shape[0]} and "
            f"{W_U.shape[1]}"
        )
    ue = W_U.double() @ W_E.double()  # (D, D)
    small = torch.einsum("hed,df,hfg->heg", W_O.double(), ue, W_V.double())  # (H, dh, dh)
    return torch.linalg.eigvals(small)


def copying_score(
    W_E: Float[Tensor, "vocab d_model"],
    W_V: Float[Tensor, "head d_model d_head"],
    W_O: Float[Tensor, "head d_head d_model"],
    W_U: Float[Tensor, "d_model vocab"],
) -> Float[Tensor, " head"]:
    r"""Per-head copying score: eigenvalue positivity of the OV circuit.

    .. math:: \mathrm{C}_h = \frac{\sum_i \lambda_i}{\sum_i |\lambda_i|}, \quad
              \lambda = \operatorname{eig}(W_E W_V^h W_O^h W_U)

    (Elhage et al. 2021, §"Copying / Primitive In-Context Learning"; used for the copying
    property of Olsson et al. 2022, §"Key Concepts"). ``sum λ`` is the trace, so real.
    A head whose OV circuit maps every token to its own logit (identity-like) scores 1, an
    anti-copying head -1, a random matrix about 0. Only the direct path (embedding → head
    → unembedding) is used, as in both papers.

    Args:
        W_E: token embedding, shape (vocab, d_model).
        W_V, W_O: the layer's value and output weights, shapes (head, d_model, d_head)
            and (head, d_head, d_model).
        W_U: unembedding, shape (d_model, vocab).

    Returns:
        Scores in [-1, 1], shape (head,); 0 for a head whose OV circuit is zero.

    Raises:
        ValueError: if the input and output vocabularies differ.
    """
    lam = ov_circuit_eigenvalues(W_E, W_V, W_O, W_U)  # (H, dh) complex
    total = lam.abs().sum(-1)
    trace = lam.real.sum(-1)
    return torch.where(total > 0, trace / total.clamp_min(1e-300), torch.zeros_like(trace)).float()


def per_position_loss(
    logits: Float[Tensor, "batch pos vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, " pos_minus_1"]:
    """Next-token cross-entropy (nats) at each position, averaged over the batch.

    Entry ``i`` is ``-log p(tokens[:, i + 1] | tokens[:, :i + 1])``: the loss of the
    prediction made at token index ``i`` (Olsson et al. 2022's "loss at token index i").

    Returns:
        Shape (pos - 1,), float64.
    """
    logp = logits[:, :-1].double().log_softmax(-1)  # (B, T-1, V)
    nll = -logp.gather(-1, tokens[:, 1:, None])[..., 0]  # (B, T-1)
    return nll.mean(0)


def icl_positions(n_ctx: int) -> tuple[int, int]:
    """Token indices ``(early, late)`` of the ICL score scaled to a context of ``n_ctx``.

    Olsson et al. 2022 (§"Key Concepts", in-context learning score) use token indices 50
    and 500, both far from the ends of their long contexts. Keeping their 1:10 ratio,
    ``late = round(0.8 · (n_ctx - 1))`` sits inside the repeat of the evaluation sequences
    (a block of ``n_ctx // 2`` tokens and its repeat) but away from the last positions, and
    ``early = round(late · 50 / 500)``; for ``n_ctx = 85`` that is (7, 67).

    Raises:
        ValueError: if ``n_ctx < 4`` (no repeat to measure).
    """
    if n_ctx < 4:
        raise ValueError(f"n_ctx={n_ctx}: need at least 4 tokens for an ICL score")
    late = round(0.8 * (n_ctx - 1))
    return round(late * OLSSON_EARLY / OLSSON_LATE), late


def icl_score(losses: Float[Tensor, " pos_minus_1"], early: int, late: int) -> float:
    """In-context-learning score in nats: ``loss[late] - loss[early]`` (Olsson et al. 2022).

    Negative when later tokens are predicted better thanks to the context.
    """
    return float(losses[late] - losses[early])


def transition_steps(
    steps: list[int], values: list[float], *, min_change: float
) -> dict[str, int | float | None]:
    """Start, middle and end of a monotone-ish transition in a curve sampled at ``steps``.

    With ``v0`` the first value and ``v*`` the extreme value reached (max if the curve
    mostly rises, min if it mostly falls), the change is ``Δ = v* - v0``; the transition
    starts at the first step that has covered 10% of ``Δ``, is half-way at 50% and ends at
    90%. If ``|Δ| < min_change`` there is no transition and the steps are None.

    Args:
        steps: ascending steps (updates).
        values: the curve at those steps (same length), any units.
        min_change: smallest ``|Δ|`` (same units) that counts as a transition.

    Returns:
        ``{"start", "mid", "end"}`` steps (or None) and ``"change"`` (Δ, same units).
    """
    none: dict[str, int | float | None] = {"start": None, "mid": None, "end": None}
    if len(values) < 2:
        return {**none, "change": 0.0}
    v = torch.tensor(values, dtype=torch.float64)
    rising = (v.max() - v[0]) >= (v[0] - v.min())
    delta = float((v.max() if rising else v.min()) - v[0])
    if abs(delta) < min_change:
        return {**none, "change": delta}
    covered = (v - v[0]) / delta  # fraction of the change reached at each step
    out: dict[str, int | float | None] = {"change": delta}
    for name, frac in (("start", 0.1), ("mid", 0.5), ("end", 0.9)):
        out[name] = int(steps[int((covered >= frac).nonzero()[0, 0])])
    return out


def heads_above(
    final: Float[Tensor, "layer head"],
    history: list[Float[Tensor, "layer head"]],
    steps: list[int],
    threshold: float,
) -> list[tuple[int, int, int | None]]:
    """Heads whose ``final`` score is >= ``threshold``, best first, each as
    ``(layer, head, first step in history at which it was >= threshold)``."""
    out = []
    for layer, head in (final >= threshold).nonzero().tolist():
        hits = (st for st, h in zip(steps, history) if float(h[layer, head]) >= threshold)
        out.append((layer, head, next(hits, None)))
    return sorted(out, key=lambda lh: -float(final[lh[0], lh[1]]))


def attention_table(
    pattern: Float[Tensor, "query key"], tokens: Int[Tensor, " pos"]
) -> pd.DataFrame:
    """One head's causal attention as a long table: ``query``, ``key`` (positions, key <=
    query), ``weight`` and the tokens at both positions."""
    q, k = torch.tril_indices(len(pattern), len(pattern))
    return pd.DataFrame(
        {
            "query": q.numpy(),
            "key": k.numpy(),
            "weight": pattern[q, k].double().numpy(),
            "query_token": tokens[q].numpy(),
            "key_token": tokens[k].numpy(),
        }
    )
