"""Export a phasewatch transformer to Hugging Face format (GPT-2 architecture), offline.

A pre-LayerNorm :class:`~phasewatch.models.NormedTransformer` (LayerNorm
without gain or bias, eps 1e-5) with an MLP is exactly a GPT-2 model whose LayerNorms have
unit gain and zero bias, whose attention and MLP biases are zero where phasewatch has none,
and whose unembedding is untied: the export copies the weights into that layout
(``transformer.h.<i>.attn.c_attn`` holds W_Q, W_K, W_V head by head; ``lm_head.weight`` is
W_Uᵀ) and saves ``config.json``, ``model.safetensors``, ``generation_config.json`` and a
byte-level tokenizer built locally with ``tokenizers`` (no download). The folder loads with
``AutoModelForCausalLM.from_pretrained`` and inspect_ai's ``hf/local`` provider.

Needs the ``evals`` extra (transformers, tokenizers); imported only by the export.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn

# GPT-2's reversible map from bytes to printable characters (the byte-level alphabet of
# Radford et al. 2019): printable Latin-1 bytes map to themselves, the others to 256 + i.
_PRINTABLE = [*range(33, 127), *range(161, 173), *range(174, 256)]


def byte_to_char() -> dict[int, str]:
    """Byte value → the character the byte-level pre-tokenizer writes for it (256 entries)."""
    extra = [b for b in range(256) if b not in _PRINTABLE]
    table = {b: chr(b) for b in _PRINTABLE}
    table.update({b: chr(256 + i) for i, b in enumerate(extra)})
    return table


def byte_tokenizer(specials: list[str], chat_template: str | None = None) -> Any:
    """A byte-level ``PreTrainedTokenizerFast``: ids 0-255 are the bytes, then ``specials``
    in order (ids 256, 257, ...). Text is split into single bytes (no merges), decoding
    turns bytes back into UTF-8 text.

    Args:
        specials: special token strings, e.g. ``["<|pad|>", "<|bos|>", "<|eos|>"]``; the
            first three become the pad, bos and eos tokens.
        chat_template: Jinja template stored with the tokenizer (used by ``hf/local``).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: b for b, ch in byte_to_char().items()}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=specials[0],
        bos_token=specials[1],
        eos_token=specials[2],
        additional_special_tokens=specials[3:],
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def gpt2_state_dict(model: nn.Module, n_positions: int) -> dict[str, Tensor]:
    """The weights of ``model`` (a pre-LayerNorm :class:`NormedTransformer` with an MLP) in
    ``GPT2LMHeadModel`` layout; positions beyond the trained context repeat the last one.

    Raises:
        ValueError: if the model has no LayerNorm, no MLP, ``d_model != n_heads · d_head``,
            different input and output vocabularies, or ``n_positions < n_ctx``.
    """
    cfg = model.cfg
    checks = (
        (getattr(model, "layernorm", False), "pre-LayerNorm (layernorm=True)"),
        (cfg.d_mlp > 0, "an MLP (d_mlp > 0)"),
        (cfg.d_model == cfg.n_heads * cfg.d_head, "d_model == n_heads * d_head"),
        (cfg.d_vocab == cfg.d_vocab_out, "d_vocab == d_vocab_out"),
        (n_positions >= cfg.n_ctx, f"n_positions >= n_ctx ({cfg.n_ctx})"),
    )
    for ok, need in checks:
        if not ok:
            raise ValueError(f"GPT-2 export needs {need}")
    d = cfg.d_model
    pos = model.pos_embed.W_pos.detach()
    extra = pos[-1:].expand(n_positions - cfg.n_ctx, d)
    sd: dict[str, Tensor] = {
        "transformer.wte.weight": model.embed.W_E.detach(),
        "transformer.wpe.weight": torch.cat([pos, extra]),
        "transformer.ln_f.weight": torch.ones(d),
        "transformer.ln_f.bias": torch.zeros(d),
        "lm_head.weight": model.unembed.W_U.detach().T,
    }
    for i, block in enumerate(model.blocks):
        a, m, p = block.attn, block.mlp, f"transformer.h.{i}."
        heads = [rearrange(w.detach(), "h d e -> d (h e)") for w in (a.W_Q, a.W_K, a.W_V)]
        sd |= {
            p + "ln_1.weight": torch.ones(d),
            p + "ln_1.bias": torch.zeros(d),
            p + "ln_2.weight": torch.ones(d),
            p + "ln_2.bias": torch.zeros(d),
            p + "attn.c_attn.weight": torch.cat(heads, dim=1),  # (d, 3d): q | k | v
            p + "attn.c_attn.bias": torch.zeros(3 * d),
            p + "attn.c_proj.weight": rearrange(a.W_O.detach(), "h e d -> (h e) d"),
            p + "attn.c_proj.bias": torch.zeros(d),
            p + "mlp.c_fc.weight": m.W_in.detach(),
            p + "mlp.c_fc.bias": m.b_in.detach(),
            p + "mlp.c_proj.weight": m.W_out.detach(),
            p + "mlp.c_proj.bias": m.b_out.detach(),
        }
    return {k: v.contiguous().clone() for k, v in sd.items()}


def export_gpt2(
    model: nn.Module,
    folder: str | Path,
    tokenizer: Any,
    *,
    n_positions: int,
    max_new_tokens: int,
) -> Path:
    """Save ``model`` and ``tokenizer`` in Hugging Face format into ``folder``.

    Args:
        model: a pre-LayerNorm ``NormedTransformer`` with an MLP (see :func:`gpt2_state_dict`).
        folder: output folder (created).
        tokenizer: a ``PreTrainedTokenizerFast`` whose vocabulary matches ``model``.
        n_positions: positions of the exported model (>= the trained context).
        max_new_tokens: default generation limit in ``generation_config.json``.

    Returns:
        ``folder``.
    """
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    cfg = model.cfg
    config = GPT2Config(
        vocab_size=cfg.d_vocab,
        n_positions=n_positions,
        n_embd=cfg.d_model,
        n_layer=cfg.n_layers,
        n_head=cfg.n_heads,
        n_inner=cfg.d_mlp,
        activation_function=cfg.act,  # "relu" or "gelu" (exact erf GELU, as phasewatch's)
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    hf = GPT2LMHeadModel(config)
    hf.load_state_dict(gpt2_state_dict(model, n_positions), strict=True)
    hf.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_new_tokens=max_new_tokens,
        do_sample=False,
    )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
