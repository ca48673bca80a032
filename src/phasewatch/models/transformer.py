"""A small decoder-only transformer with named hook points.

Parameter names follow TransformerLens (``embed.W_E``, ``blocks.0.attn.W_Q``,
``blocks.0.mlp.W_in``, ``unembed.W_U``) so checkpoints read naturally. Defaults match
the one-layer model of Nanda et al. 2023 (arXiv 2301.05217, §3): no LayerNorm, learned
positional embedding, ReLU MLP, untied embed/unembed, no attention biases.

The hooked forward pass (:class:`Attention`) computes attention explicitly so that every
hook point, ``hook_pattern`` included, fires; the training path
(:func:`~phasewatch.models.fast_logits`) uses :class:`CausalAttention`, the same function
in fewer memory passes, which keeps second derivatives (Hessian-vector products),
``torch.func.vmap`` (batched seeds) and forward-mode derivatives working.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

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


_PAIRS_PER_CHUNK = 64  # (sequence, head) pairs per chunk of CausalAttention (< 1 MB of scores)
_QUERY_BLOCK = 32  # query rows per causal block (keys after a block's last query are skipped)


def _query_blocks(t: int) -> list[tuple[int, int]]:
    """``[(a, b), ...]``: query rows a..b-1 of each causal block; block (a, b) attends to
    keys 0..b-1 only."""
    n = max(1, round(t / _QUERY_BLOCK))
    cuts = [round(i * t / n) for i in range(n + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def explicit_attention(
    q: Float[Tensor, "pairs pos d_head"],
    k: Float[Tensor, "pairs pos d_head"],
    v: Float[Tensor, "pairs pos d_head"],
) -> tuple[Float[Tensor, "pairs pos d_head"], Float[Tensor, "pairs pos pos"]]:
    """Causal softmax attention written out (Vaswani et al. 2017 §3.2.1), ``q`` already
    scaled: ``P = softmax(q kᵀ + M)`` with M = −∞ above the diagonal, ``z = P v``.
    Differentiable to any order; returns ``(z, P)``."""
    t = q.shape[1]
    mask = torch.full((t, t), float("-inf"), dtype=q.dtype, device=q.device).triu(1)
    pattern = torch.baddbmm(mask, q, k.transpose(1, 2)).softmax(-1)  # (N, T, T)
    return torch.bmm(pattern, v), pattern


class CausalAttention(torch.autograd.Function):
    """Causal softmax attention ``z = softmax(q kᵀ + M) v`` for many (sequence, head)
    pairs, same function as :func:`explicit_attention` with fewer memory passes.

    The pairs are taken in chunks of ``_PAIRS_PER_CHUNK`` so that each chunk's scores
    stay in the L2 cache through softmax and both products, and the queries in blocks of
    about ``_QUERY_BLOCK`` rows, each multiplied only by the keys up to its last row (the
    causal mask makes the rest zero: about a third of the products and exponentials for
    85 positions). The patterns are kept for the backward pass (Vaswani et al. 2017
    §3.2.1; gradient: dv = Pᵀdz, dS = P ⊙ (dz vᵀ − rowsum(P ⊙ dz vᵀ)), dq = dS k,
    dk = dSᵀ q). When the backward pass is itself differentiated (``create_graph=True``,
    e.g. Hessian-vector products) it recomputes :func:`explicit_attention` with
    differentiable operations instead; under :func:`torch.func.vmap` the mapped dimension
    joins the pairs.

    Args (of ``apply``): ``qkv`` (3, pairs, pos, d_head): queries (already scaled by
    1/√d_head), keys and values. Returns ``(z, *patterns)``: z (pairs, pos, d_head) and
    one (pairs, b − a, b) pattern block per query block (not differentiable).
    """

    @staticmethod
    def forward(qkv: Float[Tensor, "3 pairs pos d_head"]) -> tuple[Tensor, ...]:
        """``(z, *pattern_blocks)`` (see the class docstring)."""
        q, k, v = qkv
        n, t, e = q.shape
        mask = torch.full((t, t), float("-inf"), dtype=q.dtype, device=q.device).triu(1)
        blocks = _query_blocks(t)
        zs = [q.new_empty(n, b - a, e) for a, b in blocks]  # (N, rows, dh) per block
        pats = [q.new_empty(n, b - a, b) for a, b in blocks]  # (N, rows, keys) per block
        buf = q.new_empty(min(n, _PAIRS_PER_CHUNK) * t * t)  # scores of a chunk's block
        for lo in range(0, n, _PAIRS_PER_CHUNK):
            hi = min(lo + _PAIRS_PER_CHUNK, n)
            for (a, b), pat, z in zip(blocks, pats, zs):
                s = buf[: (hi - lo) * (b - a) * b].view(hi - lo, b - a, b)  # (C, rows, keys)
                torch.bmm(q[lo:hi, a:b], k[lo:hi, :b].transpose(1, 2), out=s)
                torch.softmax(s.add_(mask[a:b, :b]), -1, out=pat[lo:hi])
                torch.bmm(pat[lo:hi], v[lo:hi, :b], out=z[lo:hi])
        return (torch.cat(zs, 1), *pats)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor], output: tuple[Tensor, ...]) -> None:
        """Saves ``qkv`` and the pattern blocks."""
        ctx.save_for_backward(inputs[0], *output[1:])
        ctx.save_for_forward(inputs[0])
        ctx.mark_non_differentiable(*output[1:])

    @staticmethod
    def backward(ctx: Any, dz: Tensor, *_: Tensor) -> Tensor:
        """``d qkv`` (3, pairs, pos, d_head) from ``dz`` (pairs, pos, d_head)."""
        qkv, *pats = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: a backward that autograd can differentiate
            return _explicit_backward(qkv, dz)
        return _attention_backward(qkv, pats, dz)

    @staticmethod
    def jvp(ctx: Any, dqkv: Tensor) -> tuple[Tensor | None, ...]:
        """Forward mode: dz = dP v + P dv with dP = P ⊙ (dS − rowsum(P ⊙ dS)),
        dS = dq kᵀ + q dkᵀ (P recomputed by :func:`explicit_attention`)."""
        (q, k, v), (dq, dk, dv) = ctx.saved_tensors[0], dqkv
        pattern = explicit_attention(q, k, v)[1]  # (N, T, T)
        ds = torch.bmm(dq, k.transpose(1, 2)) + torch.bmm(q, dk.transpose(1, 2))
        dp = pattern * (ds - (pattern * ds).sum(-1, keepdim=True))
        dz = torch.bmm(dp, v) + torch.bmm(pattern, dv)
        return (dz, *(None for _ in _query_blocks(q.shape[1])))

    @staticmethod
    def vmap(info: Any, in_dims: tuple[int | None], qkv: Tensor) -> tuple[tuple, tuple]:
        """Folds the mapped dimension into the pairs: (K, 3, N, …) → (3, K·N, …)."""
        qkv = qkv.movedim(in_dims[0], 1)  # (3, K, N, T, dh)
        k = qkv.shape[1]
        out = CausalAttention.apply(qkv.flatten(1, 2))
        return tuple(o.unflatten(0, (k, -1)) for o in out), (0,) * len(out)


def _attention_backward(
    qkv: Float[Tensor, "3 pairs pos d_head"], pats: list[Tensor], dz: Tensor
) -> Float[Tensor, "3 pairs pos d_head"]:
    """The gradient of :class:`CausalAttention` from its saved patterns, chunk by chunk
    (matrix products write only to contiguous outputs: strided ones run row by row)."""
    q, k, v = qkv
    n, t, _ = q.shape
    blocks = _query_blocks(t)[::-1]  # the last block (all keys) first: it sets dk and dv
    dqkv = torch.empty_like(qkv)  # (3, N, T, dh)
    dqs = [q.new_empty(n, b - a, q.shape[2]) for a, b in blocks]
    _, dk, dv = dqkv
    buf = q.new_empty(min(n, _PAIRS_PER_CHUNK) * t * t)  # dS of a chunk's block (reused)
    for lo in range(0, n, _PAIRS_PER_CHUNK):
        hi = min(lo + _PAIRS_PER_CHUNK, n)
        for (a, b), pat, dq in zip(blocks, pats[::-1], dqs):
            p, dzc = pat[lo:hi], dz[lo:hi, a:b]  # (C, rows, keys), (C, rows, dh)
            ds = buf[: p.numel()].view(p.shape)  # (C, rows, keys)
            torch.bmm(dzc, v[lo:hi, :b].transpose(1, 2), out=ds)
            torch._softmax_backward_data(ds, p, -1, q.dtype, grad_input=ds)  # dS, one pass
            torch.bmm(ds, k[lo:hi, :b], out=dq[lo:hi])
            if b == t:
                torch.bmm(p.transpose(1, 2), dzc, out=dv[lo:hi])
                torch.bmm(ds.transpose(1, 2), q[lo:hi, a:b], out=dk[lo:hi])
            else:
                dv[lo:hi, :b] += torch.bmm(p.transpose(1, 2), dzc)
                dk[lo:hi, :b] += torch.bmm(ds.transpose(1, 2), q[lo:hi, a:b])
    torch.cat(dqs[::-1], 1, out=dqkv[0])
    return dqkv


def _explicit_backward(
    qkv: Float[Tensor, "3 pairs pos d_head"], dz: Float[Tensor, "pairs pos d_head"]
) -> Float[Tensor, "3 pairs pos d_head"]:
    """The gradient of :class:`CausalAttention` from differentiable operations only (the
    formulas of its docstring, with P recomputed by :func:`explicit_attention`)."""
    q, k, v = qkv
    pattern = explicit_attention(q, k, v)[1]  # (N, T, T)
    dp = torch.bmm(dz, v.transpose(1, 2))  # (N, T, T)
    ds = pattern * (dp - (pattern * dp).sum(-1, keepdim=True))
    dv = torch.bmm(pattern.transpose(1, 2), dz)
    return torch.stack((torch.bmm(ds, k), torch.bmm(ds.transpose(1, 2), q), dv))


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
