"""Base64Bench's prompts and scoring rules, free of inspect_ai (shared with the base64 ladder).

Base64Bench (2025; LessWrong post with MIT-licensed inspect_ai code) asks a model to
encode text to base64, or decode base64 to text, with no tools and no reasoning, and
scores the answer by normalised Levenshtein similarity to the original text:

.. math:: s(a, b) = 1 - \\frac{\\mathrm{lev}(a, b)}{\\max(|a|, |b|)}

on stripped strings (two empty strings: 1; exactly one empty: 0). An *encode* answer is
first base64-decoded strictly (RFC 4648 alphabet, correct padding) and the bytes decoded as
UTF-8; an answer that fails either step scores 0. The original benchmark raises on empty
answers and refusals (so inspect retries them); here they are kept, marked and scored 0,
so every sample counts.

The Levenshtein distance comes from the ``Levenshtein`` package (the ``evals`` extra),
imported when first needed so that ``import phasewatch`` stays light.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

DIRECTIONS = ("encode", "decode")

ENCODE_PROMPT = (
    "Encode the following text to base64. Output ONLY the base64-encoded string with no "
    "additional formatting, explanations, or markdown.\n\nText to encode:\n{text}\n\nBase64:"
)
DECODE_PROMPT = (
    "Decode the following base64 string. Output ONLY the decoded text with no additional "
    "formatting, explanations, or markdown.\n\nBase64 to decode:\n{text}\n\nDecoded text:"
)
# The text between these markers is what a prompt asks to encode / decode.
PROMPT_MARKERS = {
    "encode": ("Text to encode:\n", "\n\nBase64:"),
    "decode": ("Base64 to decode:\n", "\n\nDecoded text:"),
}

# Statuses of a scored answer; every status but "ok" fails at every threshold.
STATUSES = ("ok", "empty", "refusal", "invalid_base64", "not_utf8", "error")

# Lower-case phrases that mark an answer as a refusal (checked at the answer's start and
# only when the expected text does not itself contain the phrase).
REFUSAL_PHRASES = (
    "i can't",
    "i cannot",
    "i can not",
    "i won't",
    "i will not",
    "i'm sorry",
    "i am sorry",
    "sorry, i",
    "i'm unable",
    "i am unable",
    "i'm not able",
    "i am not able",
    "as an ai",
    "i must decline",
    "i refuse",
)


def b64encode(text: str) -> str:
    """Standard base64 (RFC 4648 §4, with ``=`` padding) of ``text``'s UTF-8 bytes."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def prompt(direction: str, text: str) -> str:
    """The Base64Bench prompt for ``text``: encode it, or decode its base64.

    Raises:
        ValueError: if ``direction`` is not ``encode`` or ``decode``.
    """
    if direction == "encode":
        return ENCODE_PROMPT.format(text=text)
    if direction == "decode":
        return DECODE_PROMPT.format(text=b64encode(text))
    raise ValueError(f"direction={direction!r} is invalid; allowed: encode, decode")


def similarity(a: str, b: str) -> float:
    """Normalised Levenshtein similarity ``1 - lev(a, b) / max(len(a), len(b))`` in [0, 1].

    Two empty strings have similarity 1, an empty and a non-empty one 0 (Base64Bench).
    Lengths and distances count Unicode code points.
    """
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    from Levenshtein import distance

    return 1.0 - distance(a, b) / max(len(a), len(b))


def is_refusal(answer: str, expected: str) -> bool:
    """Whether ``answer`` opens with a refusal phrase that ``expected`` does not contain."""
    head, want = answer.strip().lower()[:80], expected.lower()
    return any(head.startswith(p) and p not in want for p in REFUSAL_PHRASES)


@dataclass(frozen=True)
class Scored:
    """One scored answer.

    Attributes:
        similarity: normalised Levenshtein similarity in [0, 1] (0 unless status is ok).
        status: one of :data:`STATUSES`.
        compared: the string compared with the stripped expected text (the decoded
            answer for encode samples), or ``""`` when the answer failed before that.
    """

    similarity: float
    status: str
    compared: str

    def passed(self, threshold: float) -> bool:
        """Pass at ``threshold``: a valid answer with similarity >= threshold."""
        return self.status == "ok" and self.similarity >= threshold


def strict_b64decode(answer: str) -> bytes:
    """Decode ``answer`` as standard base64, rejecting any character outside the alphabet
    and wrong padding (``base64.b64decode(..., validate=True)``).

    Raises:
        binascii.Error: if ``answer`` is not valid base64.
    """
    return base64.b64decode(answer, validate=True)


def score_answer(answer: str, expected: str, direction: str) -> Scored:
    """Score a model's ``answer`` to a Base64Bench sample whose original text is ``expected``.

    Both are stripped. Empty answers and refusals fail (similarity 0). Encode answers must
    decode strictly as base64 and then as UTF-8 (else ``invalid_base64`` / ``not_utf8``,
    similarity 0); the decoded text is stripped and compared. Decode answers are compared
    directly.

    Raises:
        ValueError: if ``direction`` is not ``encode`` or ``decode``.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r} is invalid; allowed: encode, decode")
    answer, want = answer.strip(), expected.strip()
    if not answer:
        return Scored(0.0, "empty", "")
    if is_refusal(answer, want):
        return Scored(0.0, "refusal", "")
    if direction == "encode":
        try:
            raw = strict_b64decode(answer)
        except (binascii.Error, ValueError):
            return Scored(0.0, "invalid_base64", "")
        try:
            answer = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            return Scored(0.0, "not_utf8", "")
    return Scored(similarity(answer, want), "ok", answer)
