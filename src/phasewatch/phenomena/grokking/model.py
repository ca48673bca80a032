"""The grokking model's fast read-out path: the logits at the ``=`` position of a one-layer
:class:`~phasewatch.models.Transformer` (Nanda et al. 2023, arXiv 2301.05217, §3) without
running the other two positions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from phasewatch.models import Transformer


def readout_logits(
    model: Transformer, a: Int[Tensor, " batch"], b: Int[Tensor, " batch"]
) -> Float[Tensor, "batch p"]:
    """Logits at the ``=`` position of ``a b =`` — the same function as
    ``model(tokens)[:, -1]`` for a one-layer model, computed in a fraction of the FLOPs.

    Only the read-out position's residual stream is computed. Its query is the same for
    every example (the token is always ``=``), and the keys, attention scores and OV
    outputs of positions 0 and 1 depend on one token each, so they are formed once per
    vocabulary entry (p rows) and gathered per example. Hook points do not fire; use
    ``model(tokens)`` with :func:`~phasewatch.models.run_with_cache` for activations.
    This is the training hot path (every step, full batch), so its reshapes stay plain
    ``reshape``/``view``/``transpose`` with shape comments rather than ``einops``.

    Args:
        model: a one-layer transformer with vocabulary p + 1 (``=`` is token p).
        a, b: the operands, ints in [0, p).

    Returns:
        Logits over the p answers (batch, p).
    """
    attn, mlp = model.blocks[0].attn, model.blocks[0].mlp
    W_E, W_pos = model.embed.W_E, model.pos_embed.W_pos
    p = W_E.shape[0] - 1
    x_tok = W_E[:p]  # (p, D): digit embeddings
    x0, x1 = x_tok + W_pos[0], x_tok + W_pos[1]  # (p, D) residual at positions 0, 1
    x2 = W_E[p] + W_pos[2]  # (D,) residual at the '=' position
    q = torch.einsum("d,hde->he", x2, attn.W_Q)  # (H, dh)
    x_all = torch.cat([x0, x1, x2[None]])  # (2p+1, D)
    k = torch.einsum("vd,hde->vhe", x_all, attn.W_K)  # (2p+1, H, dh)
    scores = torch.einsum("vhe,he->vh", k, q) * attn.scale  # (2p+1, H)
    ov = torch.einsum("vd,hde,hem->vhm", x_all, attn.W_V, attn.W_O)  # (2p+1, H, D)
    h, d = ov.shape[1:]
    ov_flat = ov.reshape(len(ov), h * d)  # (2p+1, H*D)
    s = torch.stack([scores[a], scores[p + b], scores[2 * p].expand(len(a), -1)], dim=-1).softmax(
        dim=-1
    )  # (B, H, 3): attention of '=' on positions 0, 1, 2
    rows = F.embedding(torch.stack([a, p + b], dim=1), ov_flat)  # (B, 2, H*D)
    mix = s[..., :2].transpose(1, 2).reshape(-1, 1, 2 * h)  # (B, 1, 2H): (position, head)
    attn_out = torch.bmm(mix, rows.reshape(-1, 2 * h, d))[:, 0] + s[..., 2] @ ov[2 * p]  # (B, D)
    resid = x2 + attn_out
    resid = resid + mlp(resid)
    return resid @ model.unembed.W_U
