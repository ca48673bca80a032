"""A pre-LayerNorm variant of :class:`~phasewatch.models.Transformer` and its fast forward.

Used by the induction-heads phenomenon (attention-only, Olsson et al. 2022) and the base64
ladder (with MLPs; exported to Hugging Face format by :mod:`phasewatch.models.hf`).
Training goes through :func:`fast_logits`; the hooked ``model(tokens)`` is for activations
(attention patterns are computed explicitly there, at eval time only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from phasewatch.models.transformer import CausalAttention, Transformer, TransformerConfig


class NormedTransformer(Transformer):
    """:class:`~phasewatch.models.Transformer` with optional pre-LayerNorm.

    With ``layernorm=True`` the input of every attention layer (and MLP) and of the
    unembedding is layer-normalised without a learned gain or bias (a gain folds into the
    next weight matrix), as in the TransformerLens models of the public CPU-scale
    reproductions; attention-only models without it stay on the loss plateau several
    times longer here. No parameters are added, so checkpoints and hook names are those of
    the base model; with ``layernorm=False`` it is exactly the base model.
    """

    def __init__(
        self, cfg: TransformerConfig, *, layernorm: bool, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(cfg, generator=generator)
        self.layernorm = layernorm

    def normalize(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        """LayerNorm over ``d_model`` without gain or bias (eps 1e-5) if ``layernorm``, else
        the identity."""
        return F.layer_norm(x, x.shape[-1:]) if self.layernorm else x

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_vocab_out"]:
        """Full-sequence forward pass firing every hook point (``hook_pattern`` included)."""
        t = tokens.shape[1]
        x = self.hook_embed(self.embed.W_E[tokens] + self.pos_embed.W_pos[:t])  # (B, T, D)
        for block in self.blocks:
            x = block.hook_resid_pre(x)
            x = block.hook_resid_mid(x + block.attn(self.normalize(x)))
            if block.mlp is not None:
                x = x + block.mlp(self.normalize(x))
            x = block.hook_resid_post(x)
        return self.normalize(x) @ self.unembed.W_U


def fast_logits(
    model: NormedTransformer, tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos vocab"]:
    """The same function as ``model(tokens)`` in fewer memory passes and without hook
    points: queries, keys and values from one fused projection (the 1/√d_head scale
    folded into ``W_Q``), attention by :class:`~phasewatch.models.transformer.CausalAttention`
    (chunked, causal blocks skipped; it falls back to differentiable operations when a
    Hessian-vector product differentiates its backward pass). Use ``model(tokens)`` with
    :func:`~phasewatch.models.run_with_cache` for activations and attention patterns.

    PyTorch's fused CPU attention (``scaled_dot_product_attention``) has no double
    backward and, at d_head = 12, was not faster than this kernel here (forward + backward
    of one olsson-2layer layer, one thread, loaded machine: ~32 ms against 25–35 ms).

    Args:
        model: the transformer (any number of layers, with or without MLPs).
        tokens: token ids, shape (batch, pos), ``pos <= n_ctx``.

    Returns:
        Logits, shape (batch, pos, d_vocab_out).
    """
    b, t = tokens.shape
    x = model.embed.W_E[tokens] + model.pos_embed.W_pos[:t]  # (B, T, D)
    for block in model.blocks:
        a = block.attn
        n, d, e = a.W_Q.shape
        w = torch.cat((a.W_Q * a.scale, a.W_K, a.W_V)).permute(1, 0, 2).reshape(d, 3 * n * e)
        qkv = model.normalize(x) @ w  # (B, T, 3·H·dh): q | k | v, head by head
        qkv = qkv.view(b, t, 3, n, e).permute(2, 0, 3, 1, 4).reshape(3, b * n, t, e)
        z = CausalAttention.apply(qkv)[0].view(b, n, t, e)  # (B, H, T, dh)
        x = x + z.transpose(1, 2).reshape(b, t, n * e) @ a.W_O.reshape(n * e, d)
        if block.mlp is not None:
            x = x + block.mlp(model.normalize(x))
    return model.normalize(x) @ model.unembed.W_U
