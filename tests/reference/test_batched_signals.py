"""The batched LLC and Hessian (signals/batched.py) against the one-checkpoint loop.

Both paths draw the same random numbers (each checkpoint's generator is
``step_generator(seed, step)``, each chain's its own generator drawn from it, the Hessian's
start vectors and probes in the same order), so on a float64 model their estimates agree
to rounding, far inside the Monte Carlo error; on the float32 grokking model they agree
within a small fraction of the chain-to-chain spread. Known answers of the batched path:
tests/reference/test_signals_llc.py and test_signals_hessian.py.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from tiny_configs import GROKKING
from torch import nn

from phasewatch import api
from phasewatch.signals import batched
from phasewatch.signals.base import Probe, step_generator
from phasewatch.signals.hessian import HessianSettings, hessian
from phasewatch.signals.llc import LLCSettings, estimate_llc
from phasewatch.store.signals import read_signals_json

N = 1000


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


class TwoLayer(nn.Module):
    """A small float64 tanh network on fixed data (non-quadratic, nonzero third derivative)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(4, 3, generator=g, dtype=torch.float64))
        self.w2 = nn.Parameter(torch.randn(2, 4, generator=g, dtype=torch.float64))
        self.register_buffer("x", torch.randn(64, 3, generator=g, dtype=torch.float64))
        self.register_buffer("y", torch.randn(64, 2, generator=g, dtype=torch.float64))

    def loss(self) -> torch.Tensor:
        return ((torch.tanh(self.x @ self.w1.T) @ self.w2.T - self.y) ** 2).mean()


def _checkpoints(model: nn.Module, k: int) -> list[list[torch.Tensor]]:
    """``k`` perturbed copies of the model's parameters (the "checkpoints")."""
    g = torch.Generator().manual_seed(1)
    return [
        [
            p.detach() + 0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype)
            for p in model.parameters()
        ]
        for _ in range(k)
    ]


def _load(model: nn.Module, state: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, w in zip(model.parameters(), state):
            p.copy_(w)


def test_batched_llc_equals_the_loop_to_rounding():
    m = TwoLayer()
    states = _checkpoints(m, 3)
    s = LLCSettings(epsilon=1e-3, gamma=10.0, chains=3, draws=40, burn_in=10)
    probe = Probe(m, m.loss, N)
    gens = [step_generator(0, k) for k in range(3)]
    got = batched.llc_batch(probe, states, s, generators=gens)
    for k, res in enumerate(got):
        _load(m, states[k])
        want = estimate_llc(probe, s, generator=step_generator(0, k))
        np.testing.assert_allclose(res.traces, want.traces, rtol=1e-9)
        np.testing.assert_allclose(res.chain_llc, want.chain_llc, rtol=1e-7)
        assert res.init_loss == pytest.approx(want.init_loss, rel=1e-12)
    # the checkpoints differ, so their estimates do (no mixing of rows)
    assert len({round(r.mean, 6) for r in got}) == 3


def test_batched_hessian_equals_the_loop_to_rounding():
    m = TwoLayer()
    states = _checkpoints(m, 3)
    # d = 20: 20 Lanczos steps span the space, so the Ritz values are the eigenvalues
    s = HessianSettings(top_k=3, lanczos_steps=20, hutchinson_probes=4, slq_runs=2)
    probe = Probe(m, m.loss, N)
    got = batched.hessian_batch(
        probe, states, s, generators=[step_generator(0, k) for k in range(3)]
    )
    for k, res in enumerate(got):
        _load(m, states[k])
        want = hessian(probe, s, generator=step_generator(0, k))
        assert res.values.keys() == want.values.keys()
        for key, v in want.values.items():
            assert res.values[key] == pytest.approx(v, rel=1e-7, abs=1e-10), key
        full = torch.autograd.functional.hessian(
            lambda a, b: ((torch.tanh(m.x @ a.T) @ b.T - m.y) ** 2).mean(), tuple(states[k])
        )
        H = torch.cat(
            [
                torch.cat([h.reshape(12 if i == 0 else 8, -1) for h in row], 1)
                for i, row in enumerate(full)
            ]
        )
        err = abs(res.values["hessian/trace"] - float(torch.trace(H)))
        assert err <= 4 * res.values["hessian/trace_se"]
        eig = torch.linalg.eigvalsh(H)
        assert res.values["hessian/min_eig"] == pytest.approx(float(eig[0]), rel=1e-6, abs=1e-9)
        top = eig.flip(0)[:3]
        np.testing.assert_allclose(
            [res.values[f"hessian/top_eig/{i}"] for i in range(3)], top, rtol=1e-6
        )


def test_stacked_loss_batch_size_is_bounded_by_memory():
    m = TwoLayer()
    probe = Probe(m, m.loss, N)
    per = batched.element_bytes(probe)
    assert per >= 8 * sum(p.numel() * 8 for p in m.parameters())
    assert batched.batch_elements(probe) == batched.MEMORY_BUDGET // per
    assert batched.batch_elements(probe, double_backward=True) < batched.batch_elements(probe)


# ---- measure: batched by default, same table as the loop -------------------------------
CHEAP = {
    "llc": {"epsilon": 1e-4, "gamma": 100.0, "chains": 3, "draws": 20, "burn_in": 5},
    "hessian": {"top_k": 2, "lanczos_steps": 6, "hutchinson_probes": 4},
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return api.run(
        "grokking", "quick", GROKKING | {"threads": 1}, out=out, progress=False, report=False
    )


def _copy(run, tmp_path, name):
    dst = tmp_path / name
    shutil.copytree(run.path, dst)
    return dst


def test_measure_batched_matches_the_loop_within_monte_carlo_error(tiny_run, tmp_path):
    a, b = _copy(tiny_run, tmp_path, "a"), _copy(tiny_run, tmp_path, "b")
    sig = ["llc", "hessian", "gradients"]
    ta = api.measure(a, sig, settings=CHEAP, progress=False)
    tb = api.measure(b, sig, settings=CHEAP, progress=False, batched=False)
    assert list(ta.columns) == list(tb.columns)
    va, vb = (t.set_index(["step", "key"])["value"].sort_index() for t in (ta, tb))
    assert va.index.equals(vb.index)
    for step in (0, 20, 40):
        std = vb[(step, "llc/std")]
        assert abs(va[(step, "llc/mean")] - vb[(step, "llc/mean")]) <= 0.05 * std + 1e-9
        for key in ("hessian/top_eig/0", "hessian/trace", "grad/norm"):
            assert va[(step, key)] == pytest.approx(vb[(step, key)], rel=1e-3, abs=1e-9), key
    # rerun: everything done, nothing measured again
    again = api.measure(a, sig, settings=CHEAP, progress=False)
    assert again.equals(ta)


def test_measure_batched_is_deterministic_and_order_independent(tiny_run, tmp_path):
    a, b = _copy(tiny_run, tmp_path, "a"), _copy(tiny_run, tmp_path, "b")
    llc = {"llc": CHEAP["llc"]}
    ta = api.measure(a, ["llc"], settings=llc, progress=False)
    tb = api.measure(b, ["llc"], settings=llc, progress=False, steps=[30])
    va = ta[ta["step"] == 30].set_index("key")["value"]
    vb = tb.set_index("key")["value"]
    assert va["llc/mean"] == vb["llc/mean"] and va["llc/chain/2"] == vb["llc/chain/2"]


def test_an_unbatchable_model_falls_back_to_the_loop_and_says_so(tiny_run, tmp_path, monkeypatch):
    a = _copy(tiny_run, tmp_path, "a")

    def refuse(*args, **kwargs):
        raise RuntimeError("vmap: data-dependent control flow")

    monkeypatch.setattr("phasewatch.signals.batchrun.llc_batch", refuse)
    seen = []
    llc = {"llc": CHEAP["llc"]}
    table = api.measure(a, ["llc"], settings=llc, progress=False, on_warning=seen.append)
    assert table["step"].nunique() == 5 and table["value"].notna().any()
    msgs = [w["message"] for w in seen]
    assert len(msgs) == 1 and "llc: measured one checkpoint at a time" in msgs[0]
    assert "RuntimeError" in msgs[0]
    assert any(
        "one checkpoint at a time" in w["message"] for w in read_signals_json(_rd(a))["warnings"]
    )


def _rd(path):
    from phasewatch.store import open_run

    return open_run(path)


def test_a_model_whose_weights_cannot_be_swapped_is_refused():
    class Sliced(nn.Module):
        """Reads a slice of a ParameterList: the slice copies its items into new
        Parameters, so functional_call's swapped weights would be silently ignored."""

        def __init__(self):
            super().__init__()
            self.ws = nn.ParameterList(
                nn.Parameter(torch.ones(2, 2, dtype=torch.float64)) for _ in range(2)
            )

        def loss(self):
            A = self.ws[0]
            for w in self.ws[1:]:
                A = w @ A
            return (A**2).sum()

    m = Sliced()
    probe = Probe(m, m.loss, N)
    states = [[p.detach().clone() for p in m.parameters()]]
    with pytest.raises(RuntimeError, match="batched gradient of ws.1 differs"):
        batched.llc_batch(probe, states, LLCSettings(), generators=[step_generator(0, 0)])


def test_a_model_above_the_flop_threshold_is_measured_one_at_a_time(
    tiny_run, tmp_path, monkeypatch
):
    a = _copy(tiny_run, tmp_path, "a")

    def refuse(*args, **kwargs):
        raise AssertionError("batched path used")

    monkeypatch.setattr("phasewatch.signals.batchrun.llc_batch", refuse)
    monkeypatch.setattr("phasewatch.signals.batchrun.BATCH_MAX_MFLOP", 0.0)
    seen = []
    llc = {"llc": CHEAP["llc"]}
    table = api.measure(a, ["llc"], settings=llc, progress=False, on_warning=seen.append)
    assert table["step"].nunique() == 5 and not seen
