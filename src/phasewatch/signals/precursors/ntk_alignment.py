"""Centred kernel–target alignment of the empirical neural tangent kernel (NTK).

Kumar, Bordelon, Gershman & Pehlevan (ICLR 2024, "Grokking as the transition from lazy to
rich training dynamics", arXiv 2310.06110) explain grokking as a transition from lazy
(kernel) to rich (feature-learning) dynamics, with the alignment of the initial NTK's top
eigenvectors with the target y(x) as a key determinant of the delay (abstract, points
(1)–(3)), and relate it to a kernel-alignment measure, centred kernel alignment (CKA).
The paper gives no formula beyond CKA's standard one, so we use that: the centred
alignment of Cortes, Mohri & Rostamizadeh ("Algorithms for learning kernels based on
centered alignment", JMLR 13, 2012) between the empirical NTK K and y yᵀ,

.. math::
    A(K, Y) = \\frac{\\langle K_c, Y_c \\rangle_F}{\\lVert K_c \\rVert_F\\,
        \\lVert Y_c \\rVert_F}, \\quad K_c = HKH,\\ Y_c = HYH,\\
        H = I_m - \\tfrac1m \\mathbf{1}\\mathbf{1}^\\top,

on m probe rows x_1..x_m, with the empirical NTK and the target kernel

.. math::
    K_{ij} = \\sum_{c=1}^{k} \\langle \\nabla_\\theta f_c(x_i), \\nabla_\\theta f_c(x_j)
        \\rangle, \\qquad Y_{ij} = \\langle y_i, y_j \\rangle .

A ∈ [−1, 1] is dimensionless and invariant to scaling K (and Y) by a positive constant;
A = 1 iff K_c ∝ Y_c.

Choices (the paper's analysis is of a scalar-output regression network):

* Vector outputs (k > 1): K is the *trace* kernel, the partial trace over output
  dimensions of the full (mk × mk) NTK (:math:`K_{ij} = \\operatorname{tr}
  K^{\\text{full}}_{ij}`, k·XXᵀ for a linear model whose full NTK is XXᵀ ⊗ I_k), and y_i is
  the one-hot label for a classifier (f = the logits, so Y_ij = 1 when two rows share a
  label) or the regression target vector (f = the outputs).
* Cost control: K is estimated with R shared Gaussian output projections r ~ N(0, I_k),
  :math:`\\hat K = \\frac1R \\sum_r G_r G_r^\\top` with rows
  :math:`(G_r)_i = \\nabla_\\theta\\, r^\\top f(x_i)`, an unbiased estimate of K
  (``projections=None`` computes K exactly, one pass per output dimension).
* The m rows are drawn without replacement from the probe rows by the signal's generator.

Keys: ``ntk/alignment`` (A), ``ntk/alignment_uncentred`` (the same ratio without H,
Cristianini et al. 2001) and ``ntk/trace`` (tr K / m, the mean squared output-gradient
norm: the kernel's scale, which A ignores).

Cost: one forward pass on the m rows only (``Probe.logits(rows)``) and R backward passes
of m vector–Jacobian products each (vectorised with ``is_grads_batched`` when the model
allows it, else a loop), plus O(m² P) for the Gram matrices; memory m × P floats (P
parameters). Measured here (1 thread, default m = 64, R = 4) on the p = 113 grokking
model (227k parameters): about 2.4 s, i.e. ~18 training steps of 0.13 s; the loop
fallback took the same time there. **More than 20 training steps per measured point on
small models** (``bench/signals.py``, 2026-12-04: 53 steps on the grokking ``small`` model,
22 on ``nanda2023``, 14 on induction ``olsson-2layer``): the m × P gradient matrix does not
shrink with the model's training batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from phasewatch.config import require
from phasewatch.signals.base import Measurement, Probe, signal
from phasewatch.signals.trajectory import NotApplicable

_VJP_FLOATS = 1 << 24
"""At most this many entries in the grad_outputs of one batched backward pass."""


@dataclass(frozen=True)
class NTKAlignmentSettings:
    """Settings of the ``ntk_alignment`` signal.

    Attributes:
        samples: m, the probe rows the kernel is built on (>= 2; capped at the rows).
        projections: R shared Gaussian output projections (>= 1), or None for the exact
            trace kernel (one backward pass per output dimension).
        seed: seeds the row subset and the projections (with the checkpoint step).
    """

    samples: int = 64
    projections: int | None = 4
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.samples >= 2, "samples", "an integer >= 2", self.samples)
        require(
            self.projections is None or self.projections >= 1,
            "projections",
            "an integer >= 1 or None",
            self.projections,
        )


def centred_alignment(K: Float[Tensor, "m m"], Y: Float[Tensor, "m m"]) -> float:
    """:math:`\\langle HKH, HYH\\rangle_F / (\\lVert HKH\\rVert_F \\lVert HYH\\rVert_F)`;
    NaN if either centred kernel is zero (e.g. every row has the same target)."""
    K, Y = K.double(), Y.double()
    Kc = K - K.mean(0, keepdim=True) - K.mean(1, keepdim=True) + K.mean()  # HKH
    Yc = Y - Y.mean(0, keepdim=True) - Y.mean(1, keepdim=True) + Y.mean()  # HYH
    denom = float(Kc.norm() * Yc.norm())
    return float((Kc * Yc).sum()) / denom if denom > 0 else float("nan")


def _vjp_rows(out: Tensor, params: list[Tensor], V: Tensor) -> Tensor:
    """``(B, P)``: row b is ∇_θ ⟨V[b], out⟩, flattened over ``params`` (zeros for unused
    parameters); one vectorised backward pass, or a loop if the model's ops cannot be
    batched."""
    try:
        grads = torch.autograd.grad(
            out,
            params,
            grad_outputs=V,
            retain_graph=True,
            is_grads_batched=True,
            allow_unused=True,
        )
        rows = [
            torch.zeros(V.shape[0], p.numel(), dtype=p.dtype) if g is None else g.flatten(1)
            for p, g in zip(params, grads)
        ]
        return torch.cat(rows, 1)
    except (RuntimeError, NotImplementedError):
        out_rows = []
        for v in V:
            grads = torch.autograd.grad(
                out, params, grad_outputs=v, retain_graph=True, allow_unused=True
            )
            out_rows.append(
                torch.cat(
                    [
                        torch.zeros(p.numel(), dtype=p.dtype) if g is None else g.flatten()
                        for p, g in zip(params, grads)
                    ]
                )
            )
        return torch.stack(out_rows)


def empirical_ntk(
    out: Float[Tensor, "m k"],
    params: list[Tensor],
    *,
    projections: int | None,
    generator: torch.Generator,
) -> Float[Tensor, "m m"]:
    """The trace NTK :math:`K_{ij} = \\sum_c \\nabla f_c(x_i) \\cdot \\nabla f_c(x_j)` of
    the m rows of ``out`` (float64), exact or from shared Gaussian projections.

    Args:
        out: ``(m, k)`` model outputs on the m rows, with their autograd graph to
            ``params`` (computed on those rows only, so each backward pass is cheap).
        params: the parameters θ.
        projections: R (unbiased estimate from R projections) or None (exact).
        generator: draws the projections.
    """
    m, k = out.shape
    if projections is None:
        dirs = torch.eye(k, dtype=torch.float64)  # (k, k): one pass per output dimension
    else:
        dirs = torch.randn(projections, k, generator=generator, dtype=torch.float64)
    K = torch.zeros(m, m, dtype=torch.float64)
    eye = torch.eye(m, dtype=out.dtype, device=out.device)
    chunk = max(1, _VJP_FLOATS // (m * k))  # rows per batched backward (bounds V's memory)
    for r in dirs:
        r = r.to(out.dtype).to(out.device)
        G = (
            torch.cat(
                [
                    _vjp_rows(
                        out, params, eye[a : a + chunk, :, None] * r
                    )  # (c, m, k): row j gets r
                    for a in range(0, m, chunk)
                ]
            )
            .double()
            .cpu()
        )  # (m, P)
        K += G @ G.T
    return K / (1 if projections is None else projections)


def target_kernel(targets: Tensor, classes: int | None) -> Float[Tensor, "m m"]:
    """:math:`Y = y y^\\top` of integer labels (one-hot over ``classes``) or float targets
    ``(m, k)`` (a 1-D float target is one output)."""
    if not targets.is_floating_point():
        y = F.one_hot(targets.long(), classes).double()  # (m, C)
    else:
        y = targets.double().reshape(targets.shape[0], -1)  # (m, k)
    return y @ y.T


def _pick(probe: Probe) -> tuple[Callable[..., Tensor], Tensor]:
    """The outputs f and targets y to align: logits + labels, or outputs + regression
    targets.

    Raises:
        NotApplicable: if the task gives neither pair.
    """
    if probe.targets is None or (probe.logits is None and probe.outputs is None):
        raise NotApplicable(
            "needs the model's logits and labels (task.probe_logits, probe_targets) or its "
            "outputs and regression targets (task.probe_outputs, probe_targets)"
        )
    with torch.no_grad():
        y = probe.targets()
    if y.is_floating_point():
        if probe.outputs is None:
            raise NotApplicable("needs task.probe_outputs to go with float regression targets")
        return probe.outputs, y
    if probe.logits is None:
        raise NotApplicable("needs task.probe_logits to go with integer labels")
    return probe.logits, y


@signal("ntk_alignment", settings=NTKAlignmentSettings)
def ntk_alignment(
    probe: Probe, settings: NTKAlignmentSettings, *, generator: torch.Generator
) -> Measurement:
    """``ntk/alignment``, ``ntk/alignment_uncentred`` and ``ntk/trace`` on m probe rows
    (module docstring).

    Raises:
        NotApplicable: if the task gives no outputs with targets (see :func:`_pick`), or
            fewer than 2 rows.
    """
    f, y = _pick(probe)
    rows = y.shape[0]
    if rows < 2:
        raise NotApplicable(f"needs at least 2 probe rows, got {rows}")
    m = min(settings.samples, rows)
    idx = torch.randperm(rows, generator=generator)[:m]
    out = f(idx)  # (m, k), with its graph
    if out.ndim != 2 or out.shape[0] != m:
        raise NotApplicable(f"needs (rows, k) outputs matching the targets, got {tuple(out.shape)}")
    K = empirical_ntk(out, probe.params(), projections=settings.projections, generator=generator)
    classes = None if y.is_floating_point() else int(out.shape[1])
    Y = target_kernel(y[idx.to(y.device)].cpu(), classes)
    a = centred_alignment(K, Y)
    denom = float(K.norm() * Y.norm())
    values = {
        "ntk/alignment": a,
        "ntk/alignment_uncentred": float((K * Y).sum()) / denom if denom > 0 else float("nan"),
        "ntk/trace": float(K.diagonal().mean()),
    }
    warnings = []
    if math.isnan(a):
        warnings.append(
            "ntk_alignment: the centred target kernel is zero (one target value in "
            f"the {m} sampled rows); alignment undefined"
        )
    return Measurement(values, warnings=warnings)
