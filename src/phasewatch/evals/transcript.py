"""The thought-injection prompt: a chat prefill listing numbered sentences, tokenised with
the token positions of each sentence and the answer tokens ``1``…``N``.

The conversation (issue 17): the user explains that thoughts may be injected, the
assistant answers "Ok.", the user lists ``SENTENCE 1: …`` to ``SENTENCE N: …`` and asks
where the thought is, and the assistant's reply is prefilled with "Yes, I detect an
injected thought. It is located in SENTENCE". It is rendered with the tokenizer's chat
template (``continue_final_message``) when it has one, else as a plain
``User: … / Assistant: …`` transcript.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from phasewatch.errors import ConfigError

INTRO = (
    "I am an interpretability researcher studying transformer-based language models like "
    "you. I have access to the internals of your neural network. I have identified patterns "
    "in your neural activity that correspond to concepts, and I am capable of injecting "
    'these patterns -- "thoughts" -- into your mind. I want to assess how well you can '
    "detect where I inject thoughts. You will see a list of sentences and you will have to "
    "tell me in which sentence the thought is injected."
)
QUESTION = "Do you detect an injected thought? Where is the injected thought located?"
PREFILL = "Yes, I detect an injected thought. It is located in SENTENCE"


@dataclass(frozen=True)
class Prompt:
    """A tokenised prompt.

    Attributes:
        input_ids: the prompt's tokens (answer prefix included), (T,).
        spans: per listed sentence, the token positions it covers.
        text: the rendered prompt (without the answer prefix).
        template: ``chat`` (the tokenizer's chat template) or ``plain``.
    """

    input_ids: Int[Tensor, " pos"]
    spans: list[list[int]]
    text: str
    template: str


def messages(sentences: list[str]) -> list[dict[str, str]]:
    """The conversation listing ``sentences``, ending with the prefilled assistant turn."""
    listed = "\n".join(f"SENTENCE {i + 1}: {s}" for i, s in enumerate(sentences))
    return [
        {"role": "user", "content": INTRO},
        {"role": "assistant", "content": "Ok."},
        {"role": "user", "content": f"{listed}\n{QUESTION}"},
        {"role": "assistant", "content": PREFILL},
    ]


def render(tokenizer: Any, msgs: list[dict[str, str]]) -> tuple[str, str]:
    """``(text, template)``: the chat template's rendering if the tokenizer has one
    (``chat``), else a plain transcript (``plain``); the last message is left open."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(msgs, tokenize=False, continue_final_message=True)
        return text, "chat"
    turns = [f"{m['role'].capitalize()}: {m['content']}" for m in msgs]
    return "\n\n".join(turns), "plain"


def answer_tokens(tokenizer: Any, n: int) -> tuple[list[int], list[int]]:
    """``(prefix, digits)``: the tokens every `` 1``…`` n`` starts with (e.g. a lone space
    for tokenizers that split digits) and the one token of each digit that follows.

    Raises:
        ConfigError: naming ``--model`` if the digits are not single distinct tokens.
    """
    seqs = [tokenizer.encode(f" {d}", add_special_tokens=False) for d in range(1, n + 1)]
    k = 0
    while all(len(s) > k + 1 for s in seqs) and len({s[k] for s in seqs}) == 1:
        k += 1
    digits = [s[k] for s in seqs]
    if any(len(s) != k + 1 for s in seqs) or len(set(digits)) != n:
        raise ConfigError("--model is invalid; allowed: a tokenizer with one token per digit 1-9")
    return seqs[0][:k], digits


def _span(offsets: list[tuple[int, int]], start: int, end: int) -> list[int]:
    return [i for i, (a, b) in enumerate(offsets) if a < end and b > start and b > a]


def build_prompt(tokenizer: Any, sentences: list[str], prefix: list[int]) -> Prompt:
    """Render and tokenise the prompt listing ``sentences``; ``prefix`` (from
    :func:`answer_tokens`) is appended so that the next token is the digit.

    Raises:
        ConfigError: naming ``--model`` for a tokenizer without offsets (a slow tokenizer).
    """
    text, template = render(tokenizer, messages(sentences))
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("--model is invalid; allowed: a model with a fast tokenizer")
    enc = tokenizer(text, add_special_tokens=template == "plain", return_offsets_mapping=True)
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    spans, pos = [], 0
    for i, s in enumerate(sentences):
        label = f"SENTENCE {i + 1}: "
        start = text.index(label + s, pos) + len(label)
        pos = start + len(s)
        spans.append(_span(offsets, start, pos))
    ids = torch.tensor(list(enc["input_ids"]) + list(prefix), dtype=torch.long)
    return Prompt(ids, spans, text, template)
