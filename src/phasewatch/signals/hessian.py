"""The Hessian of the probe loss: top eigenvalues, most negative eigenvalue, trace, density.

Everything is matrix-free, on Hessian-vector products by double backpropagation
(Pearlmutter 1994): the gradient graph is built once per checkpoint and every product
``H v = ∂(∇L · v)/∂w`` reuses it. Extreme eigenvalues come from one Lanczos run with
full reorthogonalisation (its Ritz values converge to the extremes first), the trace
from Hutchinson's estimator with a standard error, and the spectral density from
stochastic Lanczos quadrature (Ghorbani, Krishnan & Xiao 2019, §2.2), the first SLQ run
being the same Lanczos run. PyHessian is not used (its PyPI release calls the removed
``torch.eig``; see references.md). Why our own Lanczos (``signals/linalg.py``, tested on
explicit matrices with known spectra) rather than ``scipy.sparse.linalg.eigsh``: ARPACK
returns eigenpairs but not the Lanczos tridiagonal that SLQ's quadrature needs, so
eigsh would cost a second Krylov run per checkpoint for the density; here one run
serves the top-k eigenvalues and the first SLQ sample.

Keys (units: nats per parameter², the Hessian of the mean loss per sample):
    ``hessian/top_eig/<i>`` (i = 0 is the largest), ``hessian/min_eig``,
    ``hessian/converged`` (1 if every reported Ritz pair has a residual ≤ 1% of
    ``|top_eig/0|``), ``hessian/trace``, ``hessian/trace_se``, ``hessian/slq_trace``
    (SLQ's own trace estimate, a consistency check), ``hessian/neg_frac`` (SLQ's
    fraction of eigenvalues below zero). Table ``hessian_density``: SLQ nodes and
    weights per run (columns ``run, node, weight``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor, nn

from phasewatch.config import require
from phasewatch.signals import linalg
from phasewatch.signals.base import Measurement, Probe, flat_grad, signal


@dataclass(frozen=True)
class HessianSettings:
    """Settings of the ``hessian`` signal.

    Attributes:
        top_k: number of largest eigenvalues reported (>= 1).
        lanczos_steps: Krylov dimension of each Lanczos run (>= top_k + 1); each step is
            one Hessian-vector product.
        hutchinson_probes: Rademacher probes of the trace estimate (>= 2).
        slq_runs: Lanczos runs from random starts for the spectral density (>= 1); the
            first also gives the extreme eigenvalues.
        seed: seeds the start vectors and probes (with the checkpoint step).
    """

    top_k: int = 5
    lanczos_steps: int = 30
    hutchinson_probes: int = 16
    slq_runs: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.top_k >= 1, "top_k", "an integer >= 1", self.top_k)
        require(
            self.lanczos_steps > self.top_k,
            "lanczos_steps",
            f"an integer > top_k ({self.top_k})",
            self.lanczos_steps,
        )
        require(
            self.hutchinson_probes >= 2,
            "hutchinson_probes",
            "an integer >= 2",
            self.hutchinson_probes,
        )
        require(self.slq_runs >= 1, "slq_runs", "an integer >= 1", self.slq_runs)


class HessianOperator:
    """``v ↦ H v`` for the Hessian of ``probe.loss()`` at the current parameters.

    Vectors are flat float64 (d,) in ``Probe.params()`` order; d = number of trainable
    parameters.
    """

    def __init__(self, probe: Probe) -> None:
        self.params: list[nn.Parameter] = probe.params()
        self.grads = flat_grad(probe.loss(), self.params, create_graph=True)
        self.d = sum(p.numel() for p in self.params)

    def split(self, v: Float[Tensor, " d"]) -> list[Tensor]:
        """``v`` cut into one tensor per parameter, each with the parameter's shape and
        dtype."""
        parts = torch.split(v, [p.numel() for p in self.params])
        return [x.view_as(p).to(p.dtype) for x, p in zip(parts, self.params)]

    def __call__(self, v: Float[Tensor, " d"]) -> Float[Tensor, " d"]:
        gv = sum((g * x).sum() for g, x in zip(self.grads, self.split(v)))
        if not gv.requires_grad:  # the loss is linear in every parameter
            return torch.zeros(self.d, dtype=torch.float64)
        hv = flat_grad(gv, self.params, retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv]).double()


def spectrum(
    op: linalg.MatVec, d: int, settings: HessianSettings, *, generator: torch.Generator
) -> tuple[dict[str, float], pd.DataFrame]:
    """The ``hessian/*`` values and the SLQ table for a symmetric operator of size d.

    Random numbers, in this order from ``generator``: the ``slq_runs`` Gaussian start
    vectors, then the Hutchinson probes (:func:`.batched.hessian_batch` draws the same).
    """
    starts = [
        torch.randn(d, generator=generator, dtype=torch.float64) for _ in range(settings.slq_runs)
    ]
    runs = [linalg.lanczos(op, v0, settings.lanczos_steps) for v0 in starts]
    samples = linalg.hutchinson(op, d, settings.hutchinson_probes, generator=generator)
    return summarize(runs, samples, d, settings)


def summarize(
    runs: list[linalg.Tridiagonal],
    samples: Float[Tensor, " probes"],
    d: int,
    settings: HessianSettings,
) -> tuple[dict[str, float], pd.DataFrame]:
    """The ``hessian/*`` values and the SLQ table from the Lanczos runs (the first gives
    the extreme eigenvalues) and the Hutchinson samples of an operator of size d."""
    first = runs[0]
    theta, _ = first.ritz()
    resid = first.residuals()
    k = min(settings.top_k, len(theta))
    top, top_resid = theta.flip(0)[:k], resid.flip(0)[:k]
    scale = max(abs(float(theta[-1])), abs(float(theta[0])), 1e-30)
    out = {f"hessian/top_eig/{i}": float(v) for i, v in enumerate(top)}
    out["hessian/min_eig"] = float(theta[0])
    out["hessian/converged"] = float(bool((top_resid <= 1e-2 * scale).all()))
    rows = []
    slq_trace, neg = 0.0, 0.0
    for r, tri in enumerate(runs):
        nodes, weights = linalg.slq_nodes(tri)
        slq_trace += d * float((nodes * weights).sum()) / len(runs)
        neg += float(weights[nodes < 0].sum()) / len(runs)
        rows += [(r, float(t), float(w)) for t, w in zip(nodes, weights)]
    out["hessian/trace"] = float(samples.mean())
    out["hessian/trace_se"] = float(samples.std() / len(samples) ** 0.5)
    out["hessian/slq_trace"] = slq_trace
    out["hessian/neg_frac"] = neg
    return out, pd.DataFrame(rows, columns=["run", "node", "weight"])


@signal("hessian", settings=HessianSettings)
def hessian(probe: Probe, settings: HessianSettings, *, generator: torch.Generator) -> Measurement:
    """Top-k / most negative eigenvalue, Hutchinson trace ± SE and SLQ density of ∇²L.

    Cost: ``slq_runs · lanczos_steps + hutchinson_probes`` Hessian-vector products (each
    about two forward-backward passes) plus one gradient with ``create_graph``.

    Source: Ghorbani et al. 2019 §2.2 (SLQ); Hutchinson 1990 (trace); Golub & Van Loan
    §10.1 (Lanczos).
    """
    op = HessianOperator(probe)
    values, table = spectrum(op, op.d, settings, generator=generator)
    return Measurement(values, tables={"hessian_density": table})
