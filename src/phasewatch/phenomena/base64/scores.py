"""Scoring of the base64 ladder's members: greedy answers scored with Base64Bench's own
scorer (all-or-nothing exact match, and accuracy at similarity 0.95) beside smooth
teacher-forced metrics (per-character accuracy, target log-likelihood), so that sharp and
smooth metrics can be compared across scale (Schaeffer et al. 2023, "Are emergent
abilities of large language models a mirage?").
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from phasewatch.evals.base64spec import score_answer
from phasewatch.models import fast_logits
from phasewatch.phenomena.base64.data import EOS, PAD, Batch, decode_answer

METRICS = ("exact", "acc95", "similarity", "char_acc", "logprob")


@torch.no_grad()
def greedy_answers(model: nn.Module, batch: Batch, max_new: int | None = None) -> list[str]:
    """Greedy answers after each row's <sep>, without a KV cache.

    Each row generates until <eos>, ``max_new`` tokens, or the end of the model's context
    (whichever comes first); one forward pass per new token over the longest prefix.

    Args:
        model: a ladder member (:class:`~phasewatch.models.NormedTransformer`).
        batch: the prompts; only tokens up to each row's <sep> are read.
        max_new: most tokens generated per row (None: up to the context's end).

    Returns:
        One answer per row (:func:`~.data.decode_answer` of its generated tokens).
    """
    n_ctx = model.cfg.n_ctx
    b = batch.tokens.shape[0]
    buf = torch.cat([batch.tokens, torch.full((b, 1), PAD)], dim=1)  # (B, T+1)
    limit = (n_ctx - 1 - batch.sep).clamp(min=0)  # (B,) tokens that fit
    if max_new is not None:
        limit = limit.clamp(max=max_new)
    rows = torch.arange(b)
    done = limit == 0
    gen: list[Tensor] = []
    for t in range(int(limit.max())):
        pos = (batch.sep + t).clamp(max=n_ctx - 1)  # (B,)
        logits = fast_logits(model, buf[:, : int(pos.max()) + 1])  # (B, P, V)
        nxt = logits[rows, pos].argmax(-1)  # (B,)
        nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
        buf[rows, pos + 1] = torch.where(done, buf[rows, pos + 1], nxt)
        gen.append(nxt)
        done = done | (nxt == EOS) | (t + 1 >= limit)
        if bool(done.all()):
            break
    out = torch.stack(gen, 1).tolist() if gen else [[] for _ in range(b)]
    return [decode_answer(row) for row in out]


def target_stats(
    logits: Float[Tensor, "batch pos vocab"], batch: Batch
) -> tuple[Float[Tensor, " batch"], Int[Tensor, " batch"]]:
    """Teacher-forced statistics of each row's target.

    Returns:
        ``(logprob_sum, n_correct)``: the summed log-likelihood (nats) of the target bytes
        and <eos> (B,), and the number of target bytes that are the argmax (B,).
    """
    logp = logits[:, :-1].float().log_softmax(-1)  # (B, T-1, V)
    nxt = batch.tokens[:, 1:]  # (B, T-1)
    tok_logp = logp.gather(-1, nxt[..., None])[..., 0]  # (B, T-1)
    logprob_sum = (tok_logp * batch.target[:, 1:]).sum(-1)
    n_correct = ((logp.argmax(-1) == nxt) & batch.chars[:, 1:]).sum(-1)
    return logprob_sum, n_correct


@torch.no_grad()
def member_samples(model: nn.Module, batch: Batch) -> pd.DataFrame:
    """Per sample: direction, text, target_len (bytes), answer, similarity, status, exact
    (pass at 1.0), acc95 (pass at 0.95), n_correct, logprob_sum (teacher forcing)."""
    logprob_sum, n_correct = target_stats(fast_logits(model, batch.tokens), batch)
    answers = greedy_answers(model, batch)
    rows = []
    for i, (text, d) in enumerate(zip(batch.texts, batch.directions)):
        s = score_answer(answers[i], text, d)
        rows.append(
            {
                "direction": d,
                "text": text,
                "target_len": int(batch.chars[i].sum()),
                "answer": answers[i],
                "similarity": s.similarity,
                "status": s.status,
                "exact": s.passed(1.0),
                "acc95": s.passed(0.95),
                "n_correct": int(n_correct[i]),
                "logprob_sum": float(logprob_sum[i]),
            }
        )
    return pd.DataFrame(rows)


def summarise(df: pd.DataFrame) -> dict[str, float]:
    """Ladder metrics from :func:`member_samples` rows: exact, acc95, similarity (means),
    char_acc (pooled over characters), logprob (nats per target token, pooled), and
    exact and char_acc per direction."""

    def pooled(g: pd.DataFrame) -> dict[str, float]:
        """Exact match (mean) and per-character accuracy (pooled) of the rows ``g``."""
        return {
            "exact": float(g["exact"].mean()),
            "char_acc": float(g["n_correct"].sum() / g["target_len"].sum()),
        }

    out = pooled(df)
    out["acc95"] = float(df["acc95"].mean())
    out["similarity"] = float(df["similarity"].mean())
    out["logprob"] = float(df["logprob_sum"].sum() / (df["target_len"] + 1).sum())
    for d, g in df.groupby("direction"):
        out |= {f"{k}/{d}": v for k, v in pooled(g).items()}
    return out


def ladder_note(small: dict[str, Any], large: dict[str, Any], beats: dict[str, bool]) -> str:
    """One sentence comparing the largest and the smallest member at the end of training."""
    moves = ", ".join(f"{m} {small[m]:.3g} → {large[m]:.3g}" for m in beats)
    worse = [m for m, ok in beats.items() if not ok]
    verdict = "better on every metric" if not worse else f"NOT better on {', '.join(worse)}"
    return (
        f"Largest member {large['member']} ({large['params']:,} parameters) vs smallest "
        f"{small['member']} ({small['params']:,}): {moves}; {verdict}."
    )
