"""The data of the base64 ladder (:mod:`phasewatch.phenomena.base64`): texts, the token
layout, batches and the decoding of generated tokens back to text.

Token layout (byte-level): ids 0-255 are bytes, then ``<|pad|>`` 256, ``<|bos|>`` 257,
``<|eos|>`` 258, ``<|encode|>`` 259, ``<|decode|>`` 260, ``<|sep|>`` 261. A sequence is
``<bos> <encode|decode> source <sep> target <eos> <pad>...``. The exported tokenizer's
chat template (:mod:`.export`) turns a Base64Bench prompt into the same layout, so the
model sees the benchmark's samples in its training format through inspect's ``hf/local``
provider. Texts follow Base64Bench (2025): short strings, common words or random ASCII.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from jaxtyping import Bool, Int
from torch import Tensor

from phasewatch.evals import words

SPECIALS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|encode|>", "<|decode|>", "<|sep|>"]
PAD, BOS, EOS, ENC, DEC, SEP = range(256, 256 + len(SPECIALS))
VOCAB = 256 + len(SPECIALS)
_VISIBLE = np.arange(33, 127, dtype=np.uint8)  # visible ASCII, no space


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
        """The same batch with its tensors on ``device``."""
        moved = {k: getattr(self, k).to(device) for k in ("tokens", "target", "chars", "sep")}
        return replace(self, **moved)


def source_target(text: str, direction: str) -> tuple[bytes, bytes]:
    """The source and target bytes of ``text`` in ``direction``."""
    raw = text.encode("utf-8")
    enc = base64.b64encode(raw)
    return (raw, enc) if direction == "encode" else (enc, raw)


def make_batch(texts: list[str], directions: list[str], n_ctx: int) -> Batch:
    """Tokenise ``(text, direction)`` pairs into ``<bos> dir source <sep> target <eos>``,
    padded with ``<pad>`` to ``n_ctx`` tokens.

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
