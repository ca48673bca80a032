"""A small decoder-only transformer with named hook points.

Parameter names follow TransformerLens (``embed.W_E``, ``blocks.0.attn.W_Q``,
``blocks.0.mlp.W_in``, ``unembed.W_U``) so checkpoints read naturally. Defaults match
the one-layer model of Nanda et al. 2023 (arXiv 2301.05217, §3): no LayerNorm, learned
positional embedding, ReLU MLP, untied embed/unembed, no attention biases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from phasewatch.config import require, require_choice
from phasewatch.models.hooks import HookPoint


@dataclass(frozen=True)
class TransformerConfig:
    """Shape of a :class:`Transformer`.

    Attributes:
        d_vocab: input vocabulary size.
        d_vocab_out: output vocabulary size (logits per position).
        n_ctx: context length (positions).
        d_model, n_heads, d_head: residual width, heads per layer, width per head.
        d_mlp: MLP hidden width; 0 makes an attention-only model.
        n_layers: number of blocks.
        act: MLP non-linearity (``relu`` or ``gelu``).
    """

    d_vocab: int
    d_vocab_out: int
    n_ctx: int
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    n_layers: int = 1
    act: str = "relu"

    def __post_init__(self) -> None:
        for name in ("d_vocab", "d_vocab_out", "n_ctx", "d_model", "n_heads", "d_head"):
            require(getattr(self, name) >= 1, name, "an integer >= 1", getattr(self, name))
        require(self.d_mlp >= 0, "d_mlp", "an integer >= 0 (0 = attention-only)", self.d_mlp)
        require(self.n_layers >= 1, "n_layers", "an integer >= 1", self.n_layers)
        require_choice("act", self.act, ("relu", "gelu"))


class Attention(nn.Module):
    """Causal multi-head attention; hooks ``hook_q/k/v`` (batch, pos, head, d_head),
    ``hook_pattern`` (batch, head, query_pos, key_pos), ``hook_z`` (batch, pos, head, d_head)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        h, d, dh = cfg.n_heads, cfg.d_model, cfg.d_head
        self.W_Q = nn.Parameter(torch.empty(h, d, dh))
        self.W_K = nn.Parameter(torch.empty(h, d, dh))
        self.W_V = nn.Parameter(torch.empty(h, d, dh))
        self.W_O = nn.Parameter(torch.empty(h, dh, d))
        self.register_buffer(
            "mask", torch.tril(torch.ones(cfg.n_ctx, cfg.n_ctx, dtype=torch.bool)), persistent=False
        )
        self.scale = 1.0 / math.sqrt(dh)
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_pattern, self.hook_z = HookPoint(), HookPoint()

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        """Causal attention of every position over positions ``<= pos``, summed over heads
        (Vaswani et al. 2017 §3.2, scores scaled by 1/√d_head)."""
        q = self.hook_q(torch.einsum("bpd,hde->bphe", x, self.W_Q))  # (B, T, H, dh)
        k = self.hook_k(torch.einsum("bpd,hde->bphe", x, self.W_K))
        v = self.hook_v(torch.einsum("bpd,hde->bphe", x, self.W_V))
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) * self.scale  # (B, H, T, T)
        t = x.shape[1]
        scores = scores.masked_fill(~self.mask[:t, :t], float("-inf"))
        pattern = self.hook_pattern(scores.softmax(dim=-1))
        z = self.hook_z(torch.einsum("bhqk,bkhe->bqhe", pattern, v))  # (B, T, H, dh)
        return torch.einsum("bqhe,hem->bqm", z, self.W_O)


class MLP(nn.Module):
    """Two-layer MLP; hooks ``hook_pre`` and ``hook_post`` (batch, pos, d_mlp)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model))
        self.act = nn.functional.relu if cfg.act == "relu" else nn.functional.gelu
        self.hook_pre, self.hook_post = HookPoint(), HookPoint()

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        """``act(x W_in + b_in) W_out + b_out`` at every position."""
        pre = self.hook_pre(x @ self.W_in + self.b_in)
        post = self.hook_post(self.act(pre))
        return post @ self.W_out + self.b_out


class Block(nn.Module):
    """Residual block; hooks ``hook_resid_pre``, ``hook_resid_mid``, ``hook_resid_post``."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.attn = Attention(cfg)
        self.mlp = MLP(cfg) if cfg.d_mlp > 0 else None
        self.hook_resid_pre, self.hook_resid_mid = HookPoint(), HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        """The residual stream after this block's attention and (if any) MLP."""
        x = self.hook_resid_pre(x)
        x = self.hook_resid_mid(x + self.attn(x))
        if self.mlp is not None:
            x = x + self.mlp(x)
        return self.hook_resid_post(x)


class Transformer(nn.Module):
    """Decoder-only transformer without LayerNorm (Nanda et al. 2023 style).

    Initialisation follows Nanda et al.'s grokking code: every weight is
    ``N(0, 1/d_model)`` except ``W_U`` which is ``N(0, 1/d_vocab_out)``; biases are zero.
    """

    def __init__(self, cfg: TransformerConfig, *, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Module()
        self.embed.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model))
        self.pos_embed = nn.Module()
        self.pos_embed.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.unembed = nn.Module()
        self.unembed.W_U = nn.Parameter(torch.empty(cfg.d_model, cfg.d_vocab_out))
        self.hook_embed = HookPoint()
        self.reset_parameters(generator=generator)

    @torch.no_grad()
    def reset_parameters(self, *, generator: torch.Generator | None = None) -> None:
        """Re-draw every parameter in place (biases zero, ``W_U`` ~ N(0, 1/d_vocab_out), every
        other weight ~ N(0, 1/d_model)), in ``named_parameters`` order from ``generator``."""
        for name, p in self.named_parameters():
            if name.split(".")[-1].startswith("b_"):
                p.zero_()
                continue
            std = 1 / math.sqrt(self.cfg.d_vocab_out if name == "unembed.W_U" else self.cfg.d_model)
            p.copy_(torch.randn(p.shape, generator=generator) * std)

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_vocab_out"]:
        """Full-sequence forward pass (every position), firing every hook point."""
        t = tokens.shape[1]
        x = self.hook_embed(self.embed.W_E[tokens] + self.pos_embed.W_pos[:t])  # (B, T, D)
        for block in self.blocks:
            x = block(x)
        return x @ self.unembed.W_U
