"""Weight and representation geometry: norms, effective rank, participation ratio.

Keys (parameter names shortened to their shortest unique dotted suffix, e.g. ``W_E`` for
``embed.W_E``; hook names in full):
    ``geometry/norm/total``: :math:`\\lVert w\\rVert_2` over every parameter.
    ``geometry/norm/<param>``: Frobenius norm of each parameter.
    ``geometry/eff_rank/<param>``, ``geometry/pr/<param>``: effective rank and
        participation ratio of each weight matrix (>= 2-D parameters; an N-D parameter is
        matricised with its largest axis as rows, e.g. ``W_Q`` (heads, d_model, d_head) →
        (d_model, heads·d_head)).
    ``geometry/eff_rank/<hook>``, ``geometry/pr/<hook>``: the same for the centred
        activations at selected hook points on the probe batch (rows = samples × positions),
        e.g. the residual stream ``blocks.0.hook_resid_post``.

Definitions, for singular values :math:`\\sigma_i` of a matrix:
    effective rank (Roy & Vetterli 2007, "The effective rank", eq. 2):
    :math:`\\exp\\big(-\\sum_i p_i\\log p_i\\big)`, :math:`p_i=\\sigma_i/\\sum_j\\sigma_j`;
    participation ratio (e.g. Gao et al. 2017; Recanatesi et al. 2019):
    :math:`(\\sum_i\\sigma_i^2)^2/\\sum_i\\sigma_i^4`. Both lie in [1, rank].
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor, nn

from phasewatch.config import require
from phasewatch.models import HookPoint, run_with_cache
from phasewatch.signals.base import Probe, signal


@dataclass(frozen=True)
class GeometrySettings:
    """Settings of the ``geometry`` signal.

    Attributes:
        hooks: substrings selecting the hook points whose activations are measured
            (default: the residual stream, the embedding and MLP outputs).
        max_rows: activation rows kept per hook (evenly spaced), bounding the SVD cost.
    """

    hooks: tuple[str, ...] = ("resid", "hook_embed", "mlp.hook_post")
    max_rows: int = 4096

    def __post_init__(self) -> None:
        object.__setattr__(self, "hooks", tuple(self.hooks))
        require(self.max_rows >= 2, "max_rows", "an integer >= 2", self.max_rows)


def effective_rank(s: Float[Tensor, " k"]) -> float:
    """Roy & Vetterli's effective rank of singular values ``s`` (1 for a zero matrix)."""
    s = s.double().clamp_min(0)
    total = s.sum()
    if total <= 0:
        return 1.0
    p = s[s > 0] / total
    return float(torch.exp(-(p * p.log()).sum()))


def participation_ratio(s: Float[Tensor, " k"]) -> float:
    """``(Σσ²)² / Σσ⁴`` of singular values ``s`` (1 for a zero matrix)."""
    lam = s.double() ** 2
    denom = (lam**2).sum()
    return float(lam.sum() ** 2 / denom) if denom > 0 else 1.0


def matricise(w: Tensor) -> Float[Tensor, "rows cols"]:
    """A parameter as a matrix: 2-D as is; N-D with its largest axis as rows."""
    if w.ndim == 2:
        return w
    axis = max(range(w.ndim), key=lambda i: w.shape[i])
    return w.movedim(axis, 0).reshape(w.shape[axis], -1)


def short_names(names: list[str]) -> dict[str, str]:
    """Each dotted name mapped to its shortest suffix that no other name ends with."""
    parts = {n: n.split(".") for n in names}
    out = {}
    for n, p in parts.items():
        for k in range(1, len(p) + 1):
            cand = ".".join(p[-k:])
            if not any(m != n and (m == cand or m.endswith("." + cand)) for m in names):
                out[n] = cand
                break
        else:
            out[n] = n
    return out


def weight_geometry(model: nn.Module) -> dict[str, float]:
    """Norms of every parameter; effective rank and participation ratio of each matrix."""
    named = [(n, p.detach()) for n, p in model.named_parameters()]
    short = short_names([n for n, _ in named])
    total = sum(float(p.double().pow(2).sum()) for _, p in named)
    out = {"geometry/norm/total": total**0.5}
    for name, p in named:
        key = short[name]
        out[f"geometry/norm/{key}"] = float(p.double().norm())
        if p.ndim >= 2:
            s = torch.linalg.svdvals(matricise(p).double())
            out[f"geometry/eff_rank/{key}"] = effective_rank(s)
            out[f"geometry/pr/{key}"] = participation_ratio(s)
    return out


@contextlib.contextmanager
def capture(model: nn.Module, names: list[str]) -> Iterator[dict[str, Tensor]]:
    """Record (detached) the outputs of the named hook points while the block runs."""
    cache: dict[str, Tensor] = {}
    hooks = dict(model.named_modules())
    handles = []
    for name in names:

        def save(_mod, _inp, out, name=name):
            """Forward hook: keep the hook point's output, detached."""
            cache[name] = out.detach()

        handles.append(hooks[name].register_forward_hook(save))
    try:
        yield cache
    finally:
        for h in handles:
            h.remove()


def selected_hooks(model: nn.Module, patterns: tuple[str, ...]) -> list[str]:
    """Names of the model's hook points that contain any of ``patterns``."""
    return [
        n
        for n, m in model.named_modules()
        if isinstance(m, HookPoint) and any(pat in n for pat in patterns)
    ]


def activations(probe: Probe, settings: GeometrySettings) -> dict[str, Tensor]:
    """Selected hook activations on the probe batch: from ``model(*probe.inputs)`` when the
    probe has inputs, else those that fire while ``probe.loss()`` runs."""
    names = selected_hooks(probe.model, settings.hooks)
    if not names:
        return {}
    if probe.inputs is not None:
        return run_with_cache(probe.model, *probe.inputs, names=names)[1]
    with capture(probe.model, names) as cache, torch.no_grad():
        probe.loss()
    return dict(cache)


def activation_geometry(acts: dict[str, Tensor], max_rows: int) -> dict[str, float]:
    """Effective rank and participation ratio of centred activation matrices."""
    out = {}
    for name, a in acts.items():
        x = a.reshape(-1, a.shape[-1]).double()  # (samples·positions, features)
        if len(x) > max_rows:
            x = x[torch.linspace(0, len(x) - 1, max_rows).round().long()]
        s = torch.linalg.svdvals(x - x.mean(0))
        out[f"geometry/eff_rank/{name}"] = effective_rank(s)
        out[f"geometry/pr/{name}"] = participation_ratio(s)
    return out


@signal("geometry", settings=GeometrySettings)
def geometry(
    probe: Probe, settings: GeometrySettings, *, generator: torch.Generator
) -> dict[str, float]:
    """Weight norms; effective rank / participation ratio of weights and activations.

    Source: Roy & Vetterli 2007 (effective rank); participation ratio of a covariance
    spectrum (Gao et al. 2017). Cost: one SVD per matrix and one forward pass.
    """
    out = weight_geometry(probe.model)
    out.update(activation_geometry(activations(probe, settings), settings.max_rows))
    return out
