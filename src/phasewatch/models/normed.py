"""A pre-LayerNorm variant of :class:`~phasewatch.models.Transformer` and its fast forward.

Used by the induction-heads phenomenon (attention-only, Olsson et al. 2022) and the base64
ladder (with MLPs; exported to Hugging Face format by :mod:`phasewatch.models.hf`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from phasewatch.models.transformer import Transformer, TransformerConfig


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
    """The same function as ``model(tokens)`` in fewer memory passes: scores, scale and causal
    mask in one ``baddbmm`` (additive -inf mask), then softmax and ``bmm``; no hook points.
    About 1.3x faster per training step here. PyTorch's fused CPU attention
    (``scaled_dot_product_attention``) is faster still but has no double backward, which
    the Hessian signal's Hessian-vector products need. Use ``model(tokens)`` with
    :func:`~phasewatch.models.run_with_cache` for activations.

    This is the training hot path, so the head split stays a plain ``reshape``/``view``.

    Args:
        model: the transformer (any number of layers, with or without MLPs).
        tokens: token ids, shape (batch, pos), ``pos <= n_ctx``.

    Returns:
        Logits, shape (batch, pos, d_vocab_out).
    """
    t = tokens.shape[1]
    mask = torch.full((t, t), float("-inf"), device=tokens.device).triu(1)  # (T, T)
    x = model.embed.W_E[tokens] + model.pos_embed.W_pos[:t]  # (B, T, D)
    for block in model.blocks:
        a, h = block.attn, model.normalize(x)
        b, n = h.shape[0], a.W_Q.shape[0]
        q, k, v = (
            torch.einsum("bpd,hde->bhpe", h, w).reshape(b * n, t, -1)  # (B*H, T, dh)
            for w in (a.W_Q, a.W_K, a.W_V)
        )
        scores = torch.baddbmm(mask, q, k.transpose(1, 2), alpha=a.scale)  # (B*H, T, T)
        z = torch.bmm(scores.softmax(-1), v).view(b, n, t, -1)  # (B, H, T, dh)
        x = x + torch.einsum("bhpe,hem->bpm", z, a.W_O)
        if block.mlp is not None:
            x = x + block.mlp(model.normalize(x))
    return model.normalize(x) @ model.unembed.W_U
