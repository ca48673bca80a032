"""Named hook points (the TransformerLens convention, e.g. ``blocks.0.attn.hook_pattern``).

A :class:`HookPoint` is an identity module placed on every activation a measure reads;
measures attach read-only forward hooks to it and never modify the activation.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from jaxtyping import Float
from torch import Tensor, nn


class HookPoint(nn.Module):
    """Identity module whose module name (``blocks.0.mlp.hook_post``) names an activation."""

    def forward(self, x: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
        """``x`` unchanged (forward hooks registered on this module see it)."""
        return x


def run_with_cache(
    model: nn.Module, *args, names: Iterable[str] | None = None, **kwargs
) -> tuple[Tensor, dict[str, Tensor]]:
    """Run ``model(*args, **kwargs)`` and return ``(output, cache)``.

    Args:
        model: any module containing :class:`HookPoint` submodules.
        names: hook names to cache (default: all hook points).

    Returns:
        The model's output and a dict mapping hook name to a detached copy of its activation.

    Raises:
        KeyError: if a requested name is not a hook point of ``model``.
    """
    hooks = {n: m for n, m in model.named_modules() if isinstance(m, HookPoint)}
    wanted = list(hooks) if names is None else list(names)
    missing = [n for n in wanted if n not in hooks]
    if missing:
        raise KeyError(f"unknown hook point(s) {missing}; available: {sorted(hooks)}")
    cache: dict[str, Tensor] = {}
    handles = []
    for name in wanted:

        def _save(_mod, _inp, out, name=name):
            cache[name] = out.detach()

        handles.append(hooks[name].register_forward_hook(_save))
    try:
        with torch.no_grad():
            out = model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return out, cache
