"""The LLC and the Hessian of many checkpoints at once, by ``torch.func``.

A probe's loss is a function of the model's parameters; :class:`StackedLoss` makes it a
function of *stacked* parameters (a leading batch dimension B on every parameter) with
``functional_call`` + ``vmap``, so that B copies of the model — checkpoints × SGLD chains
— take one forward and one backward pass together instead of B. Gradients of the B
independent losses are one ``autograd.grad`` of their sum (each copy's loss depends only on
its own slice), and Hessian-vector products of all B copies are one double backward
through that gradient graph (Pearlmutter 1994), as in :mod:`.hessian`.

The estimators are those of :mod:`.llc` and :mod:`.hessian`, step for step and with the
same random numbers: each checkpoint gets the generator the one-at-a-time path would get
(``step_generator(seed, step)``), each chain a copy positioned where the loop's chain
starts drawing (:func:`chain_generators`; the same noise unless an earlier chain
diverged), and the Hessian's start vectors and Hutchinson probes are drawn from it in the
same order; only floating-point rounding differs.

Batching pays where a step is dominated by per-operation overhead (small models, small
probe batches); a step that already runs near the machine's matrix-multiply rate gains
at most the inverse of its share of that rate (bench/signals.py prints both).

Sources: Lau et al. 2023 (arXiv 2308.12108) §4 (LLC); Welling & Teh 2011 (SGLD);
Ghorbani, Krishnan & Xiao 2019 §2.2 (SLQ); Hutchinson 1990; Golub & Van Loan §10.1.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn
from torch.func import functional_call, vmap

from phasewatch.signals import linalg
from phasewatch.signals.base import Measurement, Probe, flat_grad
from phasewatch.signals.hessian import HessianSettings, summarize
from phasewatch.signals.llc import (
    LLCResult,
    LLCSettings,
    chain_noise,
    default_nbeta,
    diverged_message,
)

BATCH_MAX_MFLOP = 20.0
"""Models whose forward-backward pass costs more matrix-multiply MFLOP than this are
measured one checkpoint at a time by ``measure``: batching removes per-operation overhead,
not arithmetic, and measured side by side (bench/signals.py --compare, 2026-12-04) it paid
3.6× on the deep-linear ``saxe`` model (0.2 MFLOP) but cost 12% on the grokking ``small``
model (200 MFLOP, already at 27% of the matrix-multiply rate)."""

MEMORY_BUDGET = 128 * 2**20
"""Bytes a batch may hold (activations saved for backward, parameter copies), at most a
quarter of the memory available when measuring. Kept small on purpose: measured on the
grokking ``small`` model (bench/signals.py), a forward-backward per copy costs the same
from 1 to ~30 stacked copies and twice as much at 120, once a batch spills the caches."""

Params = tuple[Tensor, ...]
"""Trainable parameters in ``Probe.params()`` order; stacked: (B, *shape) each."""


class _Closure(nn.Module):
    """A module whose forward is the probe's loss closure, holding the model as ``model``
    so that ``functional_call`` can swap its parameters."""

    def __init__(self, model: nn.Module, loss) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self) -> Tensor:
        return self.loss()


class StackedLoss:
    """``probe.loss`` as a function of the trainable parameters, one copy or B stacked.

    Args:
        probe: its model and loss closure; the closure must read the parameters through
            the model's attributes (any module does), not through copies it holds.
    """

    def __init__(self, probe: Probe) -> None:
        self.names = [n for n, p in probe.model.named_parameters() if p.requires_grad]
        self.shapes = [p.shape for p in probe.params()]
        self.sizes = [p.numel() for p in probe.params()]
        self.d = sum(self.sizes)
        self._module = _Closure(probe.model, probe.loss)

    def one(self, params: Params) -> Float[Tensor, ""]:
        """The loss of one parameter copy (tensors with the parameters' shapes)."""
        swap = {f"model.{n}": t for n, t in zip(self.names, params)}
        return functional_call(self._module, swap, (), tie_weights=False)

    def losses(self, stacked: Params) -> Float[Tensor, " B"]:
        """The losses of B stacked copies (differentiable w.r.t. ``stacked``)."""
        return vmap(self.one)(stacked)

    def values_and_grads(self, stacked: Params) -> tuple[Float[Tensor, " B"], Params]:
        """Losses (B,) and gradients (B, *shape each) of B stacked copies."""
        leaves = tuple(t.detach().requires_grad_(True) for t in stacked)
        with torch.enable_grad():
            values = self.losses(leaves)
            grads = torch.autograd.grad(values.sum(), leaves, allow_unused=True)
        grads = tuple(torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads))
        return values.detach(), grads

    def verify(self, probe: Probe) -> None:
        """Check that swapping works for this model: the stacked gradient of one copy of
        the model's current weights must equal autograd's on the model itself.

        Raises:
            RuntimeError: naming the first parameter whose gradients differ (e.g. a model
                that rebuilds a ``ParameterList`` from its items, or caches a parameter,
                reads weights ``functional_call`` does not swap).
        """
        params = probe.params()
        want = flat_grad(probe.loss(), params)
        _, got = self.values_and_grads(tuple(p.detach()[None] for p in params))
        for name, w, g in zip(self.names, want, got):
            scale = float(w.abs().max()) if w.numel() else 0.0
            if not torch.allclose(g[0].double(), w.double(), rtol=1e-3, atol=1e-5 * scale + 1e-12):
                raise RuntimeError(
                    f"the batched gradient of {name} differs from the model's own "
                    "(it reads a weight torch.func cannot swap)"
                )

    def flat(self, stacked: Params) -> Float[Tensor, "B d"]:
        """Stacked parameter-shaped tensors as one (B, d) float64 matrix."""
        return torch.cat([t.reshape(len(t), -1).double() for t in stacked], dim=1)

    def split(self, mat: Float[Tensor, "B d"], like: Params) -> Params:
        """A (B, d) matrix as stacked tensors shaped and typed like ``like``."""
        parts = torch.split(mat, self.sizes, dim=1)
        return tuple(x.reshape(t.shape).to(t.dtype) for x, t in zip(parts, like))


def stack(states: Sequence[Sequence[Tensor]], repeat: int = 1) -> Params:
    """Checkpoints' parameter lists stacked (K·repeat, *shape): row ``k·repeat + c`` holds
    checkpoint k (each repeated ``repeat`` times, e.g. once per chain)."""
    return tuple(
        torch.stack([s[i].detach() for s in states]).repeat_interleave(repeat, 0).clone()
        for i in range(len(states[0]))
    )


def forward_backward_mflop(probe: Probe) -> float:
    """Matrix-multiply MFLOP of one forward-backward pass of the probe loss (as counted by
    ``torch.utils.flop_counter``; elementwise operations are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.enable_grad(), FlopCounterMode(display=False) as counter:
        torch.autograd.grad(probe.loss(), probe.params(), allow_unused=True)
    return counter.get_total_flops() / 1e6


def element_bytes(probe: Probe, double_backward: bool = False) -> int:
    """Bytes one batch element costs: the tensors one loss evaluation saves for backward
    (×3 with a retained gradient graph for Hessian-vector products) plus eight parameter
    copies (weights, w*, gradient, noise, drift and temporaries)."""
    saved = [0]

    def pack(t: Tensor) -> Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    params = probe.params()
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        probe.loss()
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    return saved[0] * (3 if double_backward else 1) + 8 * param_bytes


def batch_elements(probe: Probe, double_backward: bool = False) -> int:
    """How many model copies fit in one batch: :data:`MEMORY_BUDGET` (or a quarter of the
    available memory if less) over :func:`element_bytes`; at least 1."""
    budget = MEMORY_BUDGET
    if hasattr(os, "sysconf") and "SC_AVPHYS_PAGES" in os.sysconf_names:
        budget = min(budget, os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4)
    return max(1, int(budget // max(1, element_bytes(probe, double_backward))))


# ---- the LLC ------------------------------------------------------------------------------
def llc_batch(
    probe: Probe,
    states: Sequence[Sequence[Tensor]],
    settings: LLCSettings,
    *,
    generators: Sequence[torch.Generator],
) -> list[LLCResult]:
    """:func:`.llc.estimate_llc` on K checkpoints at once: K · chains SGLD chains stepped
    together.

    Args:
        probe: the loss closure and model (its own weights are not read or changed).
        states: per checkpoint, its trainable parameters in ``probe.params()`` order.
        settings: the SGLD settings (no step-down here; see :func:`.llc.with_step_down`).
        generators: per checkpoint, the generator the one-at-a-time path would get.

    Returns:
        One :class:`~.llc.LLCResult` per checkpoint; a chain whose loss became non-finite
        is stopped and reported as in :func:`.llc.estimate_llc`.

    Raises:
        RuntimeError: if the model cannot be batched (:meth:`StackedLoss.verify`, or an
            operation without a ``vmap`` rule).
    """
    f, chains = StackedLoss(probe), settings.chains
    f.verify(probe)
    steps = settings.burn_in + settings.draws
    nbeta = settings.nbeta if settings.nbeta is not None else default_nbeta(probe.n)
    w_star = stack(states, chains)
    params = tuple(t.clone() for t in w_star)
    like = [t[0] for t in w_star]
    gens = [g for gen in generators for g in chain_generators(gen, chains, like, steps)]
    with torch.no_grad():
        init = f.losses(stack(states)).double().numpy()  # (K,)
    traces = np.full((len(gens), steps), np.nan)  # (K·C, steps)
    alive = np.ones(len(gens), dtype=bool)
    warnings: list[list[str]] = [[] for _ in states]
    for t in range(steps):
        values, grads = f.values_and_grads(params)
        v = values.double().numpy()
        for b in np.flatnonzero(alive & ~np.isfinite(v)):
            warnings[b // chains].append(diverged_message(b % chains, t, v[b], settings.epsilon))
        alive &= np.isfinite(v)
        traces[alive, t] = v[alive]
        if t == steps - 1 or not alive.any():
            break
        noise = _stacked_noise(gens, alive, params)
        _sgld_update(params, grads, w_star, noise, settings, nbeta, alive)
    return [
        _result(
            traces[k * chains : (k + 1) * chains], float(init[k]), nbeta, f.d, warnings[k], settings
        )
        for k in range(len(states))
    ]


def chain_generators(
    generator: torch.Generator, chains: int, like: Sequence[Tensor], steps: int
) -> list[torch.Generator]:
    """One generator per chain, positioned where :func:`.llc.estimate_llc`'s chain c starts
    drawing from ``generator``: chain 0 is ``generator`` itself, chain c a copy advanced by
    the ``c · steps`` noise draws of the chains before it (shaped like ``like``, one per
    parameter and step). Equal to the loop's noise unless an earlier chain diverged (it
    then stopped drawing early in the loop)."""
    gens = [generator]
    state = generator.get_state()
    for c in range(1, chains):
        g = torch.Generator()
        g.set_state(state)
        for _ in range(c * steps):
            chain_noise(g, like)
        gens.append(g)
    return gens


def _stacked_noise(gens: list[torch.Generator], alive: np.ndarray, params: Params) -> Params:
    """Each live chain's :func:`.llc.chain_noise` (zeros for a stopped chain, which draws
    none, as in the loop), stacked like ``params``."""
    like = [p[0] for p in params]
    per_chain = [chain_noise(g, like) if a else None for g, a in zip(gens, alive)]
    return tuple(
        torch.stack([torch.zeros_like(t) if n is None else n[i] for n in per_chain])
        for i, t in enumerate(like)
    )


def _sgld_update(
    params: Params,
    grads: Params,
    w_star: Params,
    noise: Params,
    settings: LLCSettings,
    nbeta: float,
    alive: np.ndarray,
) -> None:
    """w ← w − ε/2 (nβ ∇L + γ (w − w*)) + √ε ξ in place on every stacked copy; a stopped
    chain is put back at w*."""
    eps = settings.epsilon
    dead = torch.from_numpy(~alive)
    with torch.no_grad():
        for p, g, w0, xi in zip(params, grads, w_star, noise):
            drift = g * nbeta + (p - w0) * settings.gamma
            p.add_(drift, alpha=-eps / 2).add_(xi, alpha=math.sqrt(eps))
            p[dead] = w0[dead]


def _result(
    traces: np.ndarray, init: float, nbeta: float, d: int, warnings: list[str], s: LLCSettings
) -> LLCResult:
    """One checkpoint's :class:`~.llc.LLCResult` from its chains' traces (chains, steps)."""
    sampled = traces[:, s.burn_in :]
    with np.errstate(invalid="ignore"):
        chain_llc = nbeta * (sampled.mean(axis=1) - init)
    chain_llc[np.isnan(sampled).any(axis=1)] = np.nan
    return LLCResult(traces, chain_llc, init, nbeta, s.burn_in, d, warnings, epsilon=s.epsilon)


# ---- the Hessian --------------------------------------------------------------------------
def hessian_batch(
    probe: Probe,
    states: Sequence[Sequence[Tensor]],
    settings: HessianSettings,
    *,
    generators: Sequence[torch.Generator],
) -> list[Measurement]:
    """The ``hessian`` signal (:mod:`.hessian`) of K checkpoints at once: one gradient graph
    for all K, every Hessian-vector product of a Lanczos step or Hutchinson probe one
    double backward through it for all K.

    Args:
        probe: the loss closure and model (its own weights are not read or changed).
        states: per checkpoint, its trainable parameters in ``probe.params()`` order.
        settings: the Hessian settings.
        generators: per checkpoint, the generator the one-at-a-time path would get; start
            vectors and probes are drawn from it in the same order.

    Returns:
        One :class:`~.base.Measurement` per checkpoint (values and ``hessian_density``).

    Raises:
        RuntimeError: if the model cannot be batched (as :func:`llc_batch`).
    """
    f = StackedLoss(probe)
    f.verify(probe)
    leaves = tuple(t.requires_grad_(True) for t in stack(states))
    with torch.enable_grad():
        grads = torch.autograd.grad(
            f.losses(leaves).sum(), leaves, create_graph=True, allow_unused=True
        )
    pairs = [(g, x) for g, x in zip(grads, range(len(leaves))) if g is not None and g.requires_grad]

    def matvec(vs: Float[Tensor, "K d"]) -> Float[Tensor, "K d"]:
        """H_k v_k for every row k (float64)."""
        if not pairs:  # the loss is linear in every parameter
            return torch.zeros_like(vs)
        parts = f.split(vs, leaves)
        gv = sum((g * parts[i]).sum() for g, i in pairs)
        hv = torch.autograd.grad(gv, leaves, retain_graph=True, allow_unused=True)
        return f.flat(tuple(torch.zeros_like(t) if h is None else h for t, h in zip(leaves, hv)))

    starts = [
        [torch.randn(f.d, generator=g, dtype=torch.float64) for _ in range(settings.slq_runs)]
        for g in generators
    ]
    runs = [
        linalg.lanczos_batched(matvec, torch.stack([s[r] for s in starts]), settings.lanczos_steps)
        for r in range(settings.slq_runs)
    ]  # runs[r][k]
    samples = linalg.hutchinson_batched(matvec, f.d, settings.hutchinson_probes, generators)
    out = []
    for k in range(len(states)):
        values, table = summarize([run[k] for run in runs], samples[k], f.d, settings)
        out.append(Measurement(values, tables={"hessian_density": table}))
    return out
