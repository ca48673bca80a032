"""phasewatch's LLC estimator against devinterp 2.x's on the same grokking checkpoint.

The checkpoint: the tiny grokking config (tests/tiny_configs.GROKKING, one thread) trained
for 300 steps. Both estimators sample the localized tempered posterior of
:mod:`phasewatch.signals.llc` with matched settings: step ε = 3e-4, localization γ = 100,
inverse temperature nβ = n / log n (n = 144 training pairs), the whole training set as the
batch at every step (m = n, so both are unadjusted Langevin dynamics on the full-batch
loss), the same loss (float64 mean cross-entropy in nats at the read-out position, as
``GrokkingTask.train_loss``), every chain started at w*, no burn-in: devinterp 2.0's
``compute_llc`` averages the loss over every step, burn-in included, so burn-in 0 is what
matches phasewatch's mean over the kept draws.

devinterp 2.x only takes a ``datasets.Dataset`` of ``input_ids`` and a per-token loss
``(model, input_ids) -> (batch, seq - 1)``. The adapter: each row's ``input_ids`` are the
pair and its answer ``(a, b, (a + b) mod p)``; the loss function returns each pair's
cross-entropy repeated over the ``seq - 1`` positions, so devinterp's per-token mean is
phasewatch's per-sample mean. The model is wrapped so that devinterp does not take it for
a TransformerLens model (it treats any model with ``cfg.n_heads`` as one).

Two checks: with the same Gaussian noise (devinterp seeds the global torch generator with
``init_seed + chain`` and draws in parameter order; phasewatch draws from its generator in
the same order) one chain is the same chain, to float32 rounding; with independent noise,
the two estimates agree within 3 combined standard errors (chain-to-chain, ddof = 1).
Measured (devinterp 2.0.1, torch 2.13.0, 6 chains × 150 draws): see docs/signals.md
("Cross-check against devinterp").
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from tiny_configs import GROKKING
from torch import nn

from phasewatch import api
from phasewatch.phenomena.grokking.model import readout_logits
from phasewatch.signals.llc import LLCSettings, default_nbeta, estimate_llc
from phasewatch.signals.runner import make_probe

pytest.importorskip("devinterp")
from datasets import Dataset  # noqa: E402  (a devinterp dependency)
from devinterp.slt.llc import llc as devinterp_llc  # noqa: E402

STEPS = 300
SETTINGS = LLCSettings(epsilon=3e-4, gamma=100.0, chains=10, draws=100, burn_in=0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The task with its last checkpoint loaded, and its probe."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = GROKKING | {"threads": 1, "steps": STEPS, "checkpoint_every": STEPS}
    rd = api.run("grokking", None, cfg, out=tmp_path_factory.mktemp("di"), progress=False,
                 report=False)  # fmt: skip
    task = api.build_task(rd)
    task.model.load_state_dict(rd.load_checkpoint(STEPS))
    yield task, make_probe(task, STEPS)
    torch.set_num_threads(old)


class Adapter(nn.Module):
    """The phasewatch model as ``.inner``: hides its ``cfg`` from devinterp's
    TransformerLens check."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model


def _loss_fn(model: Adapter, input_ids: torch.Tensor) -> torch.Tensor:
    """(batch, 2): each pair's cross-entropy (nats, float64) at both positions."""
    a, b, y = input_ids.unbind(-1)
    logp = readout_logits(model.inner, a, b).double().log_softmax(-1)
    nll = -logp.gather(-1, y[:, None])  # (B, 1)
    return nll.expand(-1, input_ids.shape[1] - 1)


def _devinterp(task, n: int, settings: LLCSettings, path, seed: int) -> tuple[np.ndarray, float]:
    """devinterp's per-chain LLC estimates and its L_n(w*)."""
    idx = task.train_idx
    rows = torch.stack([task.a[idx], task.b[idx], task.labels[idx]], 1)  # (n, 3)
    data = Dataset.from_dict({"input_ids": rows.tolist()}).with_format("torch")
    with torch.random.fork_rng():
        out = devinterp_llc(
            Adapter(copy.deepcopy(task.model)),
            data,
            {},
            lr=settings.epsilon,
            n_beta=default_nbeta(n),
            localization=settings.gamma,
            num_chains=settings.chains,
            num_draws=settings.draws,
            num_burnin_steps=settings.burn_in,
            batch_size=n,
            num_init_loss_batches=1,
            init_seed=seed,
            loss_fn=_loss_fn,
            device="cpu",
            output_path=path,
        )
    return out.llc_per_chain.values.astype(float), float(out.init_loss)


def _se(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / math.sqrt(len(x)))


def test_same_noise_same_chain(checkpoint, tmp_path):
    task, probe = checkpoint
    one = LLCSettings(epsilon=3e-4, gamma=100.0, chains=1, draws=60, burn_in=0)
    ours = estimate_llc(probe, one, generator=torch.Generator().manual_seed(7))
    theirs, init = _devinterp(task, probe.n, one, tmp_path / "s.zarr", seed=7)
    print(f"\none chain, same noise: phasewatch {ours.chain_llc[0]:.5f}, devinterp {theirs[0]:.5f}")
    assert init == pytest.approx(ours.init_loss, rel=1e-6)
    assert theirs[0] == pytest.approx(ours.chain_llc[0], rel=1e-3)


def test_llc_agrees_within_monte_carlo_error(checkpoint, tmp_path):
    task, probe = checkpoint
    ours = estimate_llc(probe, SETTINGS, generator=torch.Generator().manual_seed(1000))
    theirs, _ = _devinterp(task, probe.n, SETTINGS, tmp_path / "s.zarr", seed=0)
    se1, se2 = _se(ours.chain_llc), _se(theirs)
    delta = ours.mean - float(theirs.mean())
    print(
        f"\nLLC at step {STEPS}: phasewatch {ours.mean:.2f} ± {se1:.2f}, devinterp "
        f"{theirs.mean():.2f} ± {se2:.2f}, Δ = {delta:+.2f} "
        f"({abs(delta) / math.hypot(se1, se2):.2f} combined SE); nβ = {ours.nbeta:.2f}"
    )
    assert ours.ok.all() and np.isfinite(theirs).all()
    assert abs(delta) <= 3 * math.hypot(se1, se2)
