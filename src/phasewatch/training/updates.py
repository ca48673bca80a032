"""The spectral gap of the rolling Gram matrix of parameter updates, measured as a run trains.

Source: Xu 2026, "The Spectral Edge Thesis: A Mathematical Framework for Intra-Signal Phase
Transitions in Neural Network Training" (arXiv 2603.28964; abstract and §1, the
rolling-window setup with W ≈ 10 updates and the gap position
:math:`k^*=\\arg\\max_j \\sigma_j/\\sigma_{j+1}`): gap dynamics of this matrix preceded 24/24
grokking events with weight decay and 0–1/24 without. Our own implementation.

With the last W parameter updates :math:`u_s=\\theta_{s+1}-\\theta_s\\in\\mathbb R^P`
(every trainable parameter flattened, float32), stacked as the rows of
:math:`U\\in\\mathbb R^{W\\times P}`, the value at step t uses :math:`u_{t-W},\\dots,u_{t-1}`
only (causal):

.. math::
    G = U U^\\top \\in \\mathbb R^{W\\times W}, \\qquad
    \\sigma_j = \\sqrt{\\lambda_j(G)} \\ \\ (\\sigma_1\\ge\\dots\\ge\\sigma_W\\ge 0),

the singular values of U (the Gram matrix is the cheap way to get them when P ≫ W), and

.. math::
    \\texttt{gram\\_gap} = \\min\\Big(\\max_{1\\le j\\le k_{\\max}} \\rho_j,\\ 10^6\\Big),
    \\quad \\rho_j = \\begin{cases} \\sigma_j/\\sigma_{j+1} & \\sigma_{j+1} >
        \\varepsilon\\sigma_1 \\\\ \\infty & \\text{otherwise} \\end{cases}, \\qquad
    \\texttt{gram\\_top\\_frac} = \\frac{\\sigma_1}{\\sum_j \\sigma_j}\\in[1/W, 1].

Both are dimensionless (scale-free: multiplying every update by c changes neither).

Choices:

* **k.** The paper reports the gap at its position :math:`k^*=\\arg\\max_j\\sigma_j/\\sigma_{j+1}`
  and finds :math:`k^*\\le 3` empirically (Muon: 1, AdamW: 2 on one model); we take the
  maximum over :math:`j\\le k_{\\max}=3` (:data:`KMAX`), i.e. the gap at :math:`k^*`
  searched among the top modes, so the noisy ratios of the smallest singular values
  (which the paper does not use) cannot win.
* **Zero division.** A singular value :math:`\\sigma_{j+1}\\le\\varepsilon\\sigma_1`,
  ε = 1e-6 (:data:`FLOOR`), counts as zero: a window of rank <= k_max (e.g. all updates
  parallel: the paper's infinite gap) reports the finite cap 1e6 (:data:`GAP_CAP`), as
  does any ratio above it. A window of all-zero updates (:math:`\\sigma_1=0`: nothing
  moved) reports nothing.
* **Precision.** Updates are float32 (the parameters' precision); the Gram matrix is
  accumulated in float64, so the floor sits far above its round-off (a float32 Gram
  matrix would resolve :math:`\\sigma_j/\\sigma_1` only down to ~1e-3). Memory: the ring
  is W·P float64 per run (17 MB for the ``quick`` grokking model, P = 212,864).
* **Incremental.** A ring buffer holds the W updates (slot ``s mod W``); adding one
  update costs W dot products (one row of G); the spectrum is a W × W eigenproblem
  solved only when a value is logged.
* **Cadence.** The trainer feeds the tracker only the W + 1 parameter vectors before
  each eval step (:func:`due`), so its cost is about W / ``eval_every`` of a full
  per-step hook.

Resume: the window ending at a checkpoint is stored with the optimiser state (one
pseudo-parameter entry, :data:`STATE_KEY`, of W·P float32 plus the W × W Gram matrix),
so a resumed run logs the same values bit for bit. A resume point written before this
existed carries no window: the first W steps after such a resume log no value.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

WINDOW = 10  # W: updates per window (Xu 2026: W ~ 10)
KMAX = 3  # the gap position k* is searched among j = 1..KMAX (Xu 2026: k* <= 3)
FLOOR = 1e-6  # singular values below FLOOR * sigma_1 count as zero
GAP_CAP = 1.0 / FLOOR  # the gap reported for an exactly rank-deficient window
STATE_KEY = -1  # pseudo parameter index of the window in a stored optimiser state
MAX_BYTES = 1 << 30  # a larger ring (K * W * P float64) turns the tracker off

log = logging.getLogger("phasewatch.training")


def flatten(params: Iterable[Tensor], members: int | None = None) -> Tensor:
    """Every parameter flattened and concatenated, float32, detached (a new tensor).

    Args:
        params: the parameters in a fixed order (``model.parameters()``), or stacked
            parameters with a leading member dimension ``(K, *shape)``.
        members: K for stacked parameters; None for one model.

    Returns:
        ``(P,)`` for one model, ``(K, P)`` for stacked parameters.
    """
    if members is None:
        return torch.cat([p.detach().reshape(-1).float() for p in params])
    return torch.cat([p.detach().reshape(members, -1).float() for p in params], dim=1)


def spectrum(gram: Float[Tensor, "*batch W W"]) -> Float[Tensor, "*batch W"]:
    """The singular values :math:`\\sigma_j=\\sqrt{\\lambda_j(G)}` of the update matrix,
    descending, from its Gram matrix (float64; tiny negative round-off clamped to 0)."""
    lam = torch.linalg.eigvalsh(gram.double()).flip(-1)
    return lam.clamp_min(0.0).sqrt()


def gram_metrics(sigma: Float[Tensor, " W"], kmax: int = KMAX) -> dict[str, float]:
    """``gram_gap`` and ``gram_top_frac`` (see the module docstring) of one window.

    Args:
        sigma: the W >= 2 singular values, descending.
        kmax: largest gap position searched (capped at W - 1).

    Returns:
        ``{"gram_gap": ..., "gram_top_frac": ...}``; empty if :math:`\\sigma_1 = 0`.
    """
    s1 = float(sigma[0])
    if not s1 > 0.0:
        return {}
    k = min(kmax, len(sigma) - 1)
    below = sigma[1 : k + 1]
    ratios = sigma[:k] / below.clamp_min(FLOOR * s1)
    ratios = torch.where(below <= FLOOR * s1, GAP_CAP, ratios.clamp_max(GAP_CAP))
    return {"gram_gap": float(ratios.max()), "gram_top_frac": s1 / float(sigma.sum())}


class UpdateTracker:
    """A ring buffer of the last W parameter updates of K models and their Gram matrices.

    Args:
        dim: P, the number of parameters of one model.
        members: K (1 for a single run; the batch size for stacked seeds).
        window: W >= 2.
        kmax: the largest gap position searched (:func:`gram_metrics`).

    Attributes:
        ring: ``(K, W, P)`` float64 (float32 values): update ``s`` in slot ``s mod W``.
        gram: ``(K, W, W)`` float64: ``gram[k, i, j]`` = <slot i, slot j> of member k.
        index: the sequence index of the last parameters observed (None before the first).
        filled: how many consecutive updates ending at ``index - 1`` the ring holds (<= W).
        on: False when the ring would exceed :data:`MAX_BYTES` (1 GiB: P > 13 M parameters
            for one run with W = 10): the tracker then logs a warning once and reports
            nothing.

    Raises:
        ValueError: for ``window < 2``, ``members < 1`` or ``dim < 1``.
    """

    def __init__(self, dim: int, *, members: int = 1, window: int = WINDOW, kmax: int = KMAX):
        for name, value, low in (("window", window, 2), ("members", members, 1), ("dim", dim, 1)):
            if value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value}")
        self.window, self.kmax = window, kmax
        self.on = 8 * members * window * dim <= MAX_BYTES
        if not self.on:
            need = (
                f"{members} x {window} x {dim} float64 ({8 * members * window * dim / 1e9:.1f} GB)"
            )
            log.warning("updates/gram_* off: the window would need %s > MAX_BYTES", need)
        self.ring = torch.zeros(members, window, dim if self.on else 0, dtype=torch.float64)
        self.gram = torch.zeros(members, window, window, dtype=torch.float64)
        self.prev: Tensor | None = None
        self.index: int | None = None
        self.filled = 0

    def observe(self, index: int, flat: Float[Tensor, "K P"]) -> None:
        """Parameters at sequence index ``index`` (a step); if the previous observation was
        ``index - 1``, push the update between them. A gap restarts the window; observing
        the current index again changes nothing."""
        if index == self.index or not self.on:
            return
        if self.prev is not None and self.index == index - 1:
            self.push(index - 1, flat - self.prev)
        else:
            self.filled = 0
        self.prev, self.index = flat, index

    def push(self, index: int, update: Float[Tensor, "K P"]) -> None:
        """Add update ``index`` (:math:`u_{index}=\\theta_{index+1}-\\theta_{index}`): one row
        of G per member, W dot products each. A push that does not follow the last one
        restarts the window."""
        if self.index is not None and index != self.index:
            self.filled = 0
        slot = index % self.window
        self.ring[:, slot] = update
        row = torch.bmm(self.ring, self.ring[:, slot, :, None])[..., 0]  # (K, W)
        self.gram[:, slot, :] = row
        self.gram[:, :, slot] = row
        self.filled = min(self.filled + 1, self.window)
        self.index = index + 1

    def metrics(self, index: int, prefix: str = "updates/") -> list[dict[str, float]]:
        """Per member, ``{prefix + key: value}`` of the window of the W updates before
        ``index``; empty dicts while fewer than W consecutive updates are known."""
        if self.index != index or self.filled < self.window:
            return [{} for _ in range(len(self.gram))]
        sigmas = spectrum(self.gram)  # (K, W)
        return [{prefix + k: v for k, v in gram_metrics(s, self.kmax).items()} for s in sigmas]

    def state(self, index: int, member: int = 0) -> dict[str, Tensor] | None:
        """Member ``member``'s window at ``index`` for a checkpoint (None if it has none):
        ``ring`` (W·P float32), ``gram`` (W·W float64), ``index`` and ``filled``."""
        if self.index != index or self.filled == 0:
            return None
        return {
            "ring": self.ring[member].float(),
            "gram": self.gram[member].clone(),
            "index": torch.tensor([index]),
            "filled": torch.tensor([self.filled]),
        }

    def load(self, states: Sequence[dict[str, Tensor] | None], params: Tensor) -> None:
        """Restore every member's window (``states[k]`` from :meth:`state`, flattened or
        not) and the current parameters ``params`` (K, P). A missing or mismatched state
        leaves the window empty (no value for the next W steps)."""
        w, p = self.window, self.ring.shape[-1]
        ok = all(s is not None and s["ring"].numel() == w * p for s in states)
        self.prev, self.filled, self.index = params, 0, None
        if not ok:
            return
        for k, s in enumerate(states):
            self.ring[k] = s["ring"].reshape(w, p)
            self.gram[k] = s["gram"].reshape(w, w)
        self.filled = min(int(s["filled"].reshape(-1)[0]) for s in states)
        self.index = int(states[0]["index"].reshape(-1)[0])


def due(step: int, every: int, last: int, window: int = WINDOW) -> bool:
    """Whether the parameters after ``step`` updates enter the window of an eval step (a
    multiple of ``every``, or ``last``): the next eval step is at most ``window`` ahead."""
    return min(-(-step // every) * every, last) - step <= window


def split_state(optim_state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Tensor] | None]:
    """A stored optimiser state without the tracker's entry (what ``load_state_dict``
    takes), and that entry (None if absent)."""
    state = dict(optim_state["state"])
    window = state.pop(STATE_KEY, None)
    return {**optim_state, "state": state}, window


def join_state(optim_state: dict[str, Any], window: dict[str, Tensor] | None) -> dict[str, Any]:
    """``optim_state`` with the tracker's window added as pseudo parameter
    :data:`STATE_KEY` (unchanged if ``window`` is None)."""
    if window is None:
        return optim_state
    return {**optim_state, "state": {**optim_state["state"], STATE_KEY: window}}


class ModelUpdates:
    """The tracker fed from a live model at the calls of a training loop (the Watcher):
    the updates are the parameter changes between consecutive calls.

    Args:
        model: the watched model (its parameters that require grad, in order).
        every: values are reported at steps that are multiples of ``every``.
        window: W.
    """

    def __init__(self, model: nn.Module, every: int, window: int = WINDOW) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.every, self.window = every, window
        self.tracker = UpdateTracker(sum(p.numel() for p in self.params), window=window)
        self.calls, self.last_step = 0, None

    def step(self, step: int) -> dict[str, float]:
        """Record a call at training step ``step``; at a multiple of ``every``, the
        ``updates/…`` values of the last W inter-call updates (empty until W are known).

        Only the calls within W call-spacings before a multiple of ``every`` flatten the
        model (the spacing is that of the last two calls)."""
        spacing = 1 if self.last_step is None else max(step - self.last_step, 1)
        self.calls, self.last_step = self.calls + 1, step
        if not self.tracker.on or (-step) % self.every > self.window * spacing:
            return {}
        self.tracker.observe(self.calls, flatten(self.params)[None])
        return self.tracker.metrics(self.calls)[0] if step % self.every == 0 else {}
