"""Data, decoding and scoring of the base64 ladder (:mod:`phasewatch.phenomena.base64`).

Token layout (byte-level): ids 0-255 are bytes, then ``<|pad|>`` 256, ``<|bos|>`` 257,
``<|eos|>`` 258, ``<|encode|>`` 259, ``<|decode|>`` 260, ``<|sep|>`` 261. A sequence is
``<bos> <encode|decode> source <sep> target <eos> <pad>...``. The exported tokenizer's
chat template turns a Base64Bench prompt into the same layout, so the model sees the
benchmark's samples in its training format through inspect's ``hf/local`` provider.
"""

from __future__ import annotations

import base64
import importlib.util
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from phasewatch.errors import MissingDependency
from phasewatch.evals import words
from phasewatch.evals.base64spec import PROMPT_MARKERS, score_answer
from phasewatch.phenomena.induction import fast_logits

SPECIALS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|encode|>", "<|decode|>", "<|sep|>"]
PAD, BOS, EOS, ENC, DEC, SEP = range(256, 256 + len(SPECIALS))
VOCAB = 256 + len(SPECIALS)
HF_POSITIONS = 8192  # exported context: Base64Bench prompts plus inspect's 2,048 new tokens
_VISIBLE = np.arange(33, 127, dtype=np.uint8)  # visible ASCII, no space


def require_evals() -> None:
    """Raise :class:`MissingDependency` unless the ``evals`` extra is installed."""
    missing = [m for m in ("Levenshtein", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependency(
            f"base64-ladder needs {', '.join(missing)}; install: pip install 'phasewatch[evals]'"
        )


def b64_len(n_bytes: int) -> int:
    """Length of the padded base64 of ``n_bytes`` bytes: 4·ceil(n/3)."""
    return 4 * math.ceil(n_bytes / 3)


def sample_texts(rng: np.random.Generator, n: int, max_len: int, word_frac: float) -> list[str]:
    """``n`` texts of 1-``max_len`` ASCII bytes: with probability ``word_frac`` 1-3 common
    words joined by spaces (cut to ``max_len``), else uniform random visible characters."""
    out = []
    for _ in range(n):
        if rng.random() < word_frac:
            picks = rng.integers(0, len(words.COMMON_WORDS), int(rng.integers(1, 4)))
            text = " ".join(words.COMMON_WORDS[i] for i in picks)[:max_len].rstrip()
        else:
            text = bytes(rng.choice(_VISIBLE, int(rng.integers(1, max_len + 1)))).decode()
        out.append(text)
    return out


def alternate(n: int) -> list[str]:
    """``["encode", "decode", "encode", ...]`` of length ``n``."""
    return ["encode" if i % 2 == 0 else "decode" for i in range(n)]


@dataclass(frozen=True)
class Batch:
    """Tokenised sequences and their masks.

    Attributes:
        tokens: (B, T) int64 token ids.
        target: (B, T) bool, True at target bytes and <eos> (what the loss reads).
        chars: (B, T) bool, True at target bytes only.
        sep: (B,) int64 position of <sep>.
        texts: the original texts; directions: ``encode`` or ``decode`` per row.
    """

    tokens: Int[Tensor, "batch pos"]
    target: Bool[Tensor, "batch pos"]
    chars: Bool[Tensor, "batch pos"]
    sep: Int[Tensor, " batch"]
    texts: tuple[str, ...]
    directions: tuple[str, ...]

    def to(self, device: torch.device) -> Batch:
        moved = {k: getattr(self, k).to(device) for k in ("tokens", "target", "chars", "sep")}
        return replace(self, **moved)


def source_target(text: str, direction: str) -> tuple[bytes, bytes]:
    """The source and target bytes of ``text`` in ``direction``."""
    raw = text.encode("utf-8")
    enc = base64.b64encode(raw)
    return (raw, enc) if direction == "encode" else (enc, raw)


def make_batch(texts: list[str], directions: list[str], n_ctx: int) -> Batch:
    """Tokenise ``(text, direction)`` pairs into ``<bos> dir source <sep> target <eos>``.

    Raises:
        ValueError: if a sequence does not fit in ``n_ctx`` tokens.
    """
    b = len(texts)
    tokens = np.full((b, n_ctx), PAD, dtype=np.int64)
    target = np.zeros((b, n_ctx), dtype=bool)
    chars = np.zeros((b, n_ctx), dtype=bool)
    sep = np.zeros(b, dtype=np.int64)
    for i, (text, d) in enumerate(zip(texts, directions)):
        src, tgt = source_target(text, d)
        seq = [BOS, ENC if d == "encode" else DEC, *src, SEP, *tgt, EOS]
        if len(seq) > n_ctx:
            raise ValueError(f"text {text!r} needs {len(seq)} tokens > n_ctx={n_ctx}")
        s = 2 + len(src)
        tokens[i, : len(seq)] = seq
        target[i, s + 1 : len(seq)] = True
        chars[i, s + 1 : len(seq) - 1] = True
        sep[i] = s
    return Batch(
        torch.from_numpy(tokens),
        torch.from_numpy(target),
        torch.from_numpy(chars),
        torch.from_numpy(sep),
        tuple(texts),
        tuple(directions),
    )


def decode_answer(tokens: list[int]) -> str:
    """The answer text of generated tokens: the bytes before the first <eos> (other special
    tokens skipped, as ``skip_special_tokens`` does), decoded as UTF-8 with replacement."""
    out = bytearray()
    for t in tokens:
        if t == EOS:
            break
        if t < 256:
            out.append(t)
    return out.decode("utf-8", errors="replace")


@torch.no_grad()
def greedy_answers(model: nn.Module, batch: Batch, max_new: int | None = None) -> list[str]:
    """Greedy answers after each row's <sep>, without a KV cache.

    Each row generates until <eos>, ``max_new`` tokens, or the end of the model's context
    (whichever comes first); one forward pass per new token over the longest prefix.
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


def target_stats(logits: Float[Tensor, "batch pos vocab"], batch: Batch) -> tuple[Tensor, Tensor]:
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


def chat_template() -> str:
    """Jinja chat template mapping a Base64Bench prompt (last message) to the training
    layout ``<|bos|><|encode|>text<|sep|>`` / ``<|bos|><|decode|>base64<|sep|>``; any other
    message is passed through after ``<|bos|>``."""
    q = lambda s: s.replace("\n", "\\n")  # Jinja string literals take Python escapes

    def branch(keyword: str, direction: str) -> str:
        a, b = (q(s) for s in PROMPT_MARKERS[direction])
        inner = f"m.split('{a}', 1)[1].rsplit('{b}', 1)[0]"
        head = f"{{%- {keyword} '{a}' in m and '{b}' in m -%}}"
        return head + f"{{{{- '<|bos|><|{direction}|>' + {inner} + '<|sep|>' -}}}}"

    return (
        "{%- set m = messages[-1]['content'] -%}"
        + branch("if", "encode")
        + branch("elif", "decode")
        + "{%- else -%}{{- '<|bos|>' + m -}}{%- endif -%}"
    )


def export_hf(model: nn.Module, folder: Path) -> Path:
    """Save ``model`` (a ladder member) with the byte tokenizer and chat template in Hugging
    Face format (see :mod:`phasewatch.models.hf`)."""
    from phasewatch.models.hf import byte_tokenizer, export_gpt2

    tok = byte_tokenizer(SPECIALS, chat_template())
    max_new = model.cfg.n_ctx
    return export_gpt2(model, folder, tok, n_positions=HF_POSITIONS, max_new_tokens=max_new)
