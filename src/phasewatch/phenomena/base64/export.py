"""Hugging Face export of a base64 ladder member: the byte tokenizer with a chat template
that maps Base64Bench prompts to the training layout, for inspect's ``hf/local`` provider
(the weights' layout is :mod:`phasewatch.models.hf`)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from phasewatch.evals.base64spec import PROMPT_MARKERS
from phasewatch.phenomena.base64.data import SPECIALS

HF_POSITIONS = 8192  # exported context: Base64Bench prompts plus inspect's 2,048 new tokens


def chat_template() -> str:
    """Jinja chat template mapping a Base64Bench prompt (last message) to the training
    layout ``<|bos|><|encode|>text<|sep|>`` / ``<|bos|><|decode|>base64<|sep|>``; any other
    message is passed through after ``<|bos|>``."""
    q = lambda s: s.replace("\n", "\\n")  # Jinja string literals take Python escapes

    def branch(keyword: str, direction: str) -> str:
        """The ``if``/``elif`` clause for prompts of ``direction`` (between its markers)."""
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
