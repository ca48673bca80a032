"""LLC defaults that work on every preset: ε stepped down by itself when every chain
diverges, and per-preset calibrated settings applied under the user's flags.

Known case: ULA on the regular quadratic ½|w|² with nβ = n / log n ≈ 145 and γ = 1 is
stable iff ε (nβ + γ) / 2 < 2, i.e. ε < 0.0274: ε = 0.05 diverges, ε / 3 = 0.0167 samples,
and the estimate is then the exact ULA answer d/2 · (nβ/(nβ+γ)) / (1 − ε(nβ+γ)/4).
"""

from __future__ import annotations

import math
import shutil

import pytest
import torch
from tiny_configs import GROKKING
from torch import nn

from phasewatch import api, phenomena
from phasewatch.signals.base import Probe, step_generator
from phasewatch.signals.batched import llc_batch
from phasewatch.signals.llc import LLCSettings, default_nbeta, llc, with_step_down
from phasewatch.signals.runner import resolve
from phasewatch.store.signals import read_signals_json

N = 1000


class Quadratic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(6, dtype=torch.float64))

    def loss(self) -> torch.Tensor:
        return 0.5 * (self.w**2).sum()


def _ula(eps: float, d: int = 6, gamma: float = 1.0) -> float:
    a = default_nbeta(N) + gamma
    return d / 2 * (default_nbeta(N) / a) / (1 - eps * a / 4)


SETTINGS = LLCSettings(epsilon=0.05, gamma=1.0, chains=3, draws=600, burn_in=100)


def test_all_chains_diverging_steps_epsilon_down_and_says_so():
    m = Quadratic()
    out = llc(Probe(m, m.loss, N), SETTINGS, generator=torch.Generator().manual_seed(0))
    v = out.values
    assert v["llc/epsilon"] == pytest.approx(0.05 / 3) and v["llc/step_downs"] == 1
    assert v["llc/flag/diverged"] == 0 and math.isfinite(v["llc/mean"])
    assert v["llc/mean"] == pytest.approx(_ula(0.05 / 3), rel=0.1)
    assert sum("diverged at draw" in w for w in out.warnings) == 3
    assert (
        "all 3 chains diverged at epsilon=0.05; stepped down to epsilon=0.0166667"
        in (out.warnings[-1])
    )


def test_step_down_zero_keeps_the_empty_estimate_and_a_bounded_number_of_tries():
    m = Quadratic()
    probe = Probe(m, m.loss, N)
    gen = torch.Generator().manual_seed(0)
    off = llc(probe, LLCSettings(**{**SETTINGS.__dict__, "step_down": 0}), generator=gen).values
    assert math.isnan(off["llc/mean"]) and off["llc/step_downs"] == 0
    # ε = 30 needs 7 divisions by 3; with step_down = 2 it stops after two, still diverged
    two = LLCSettings(**{**SETTINGS.__dict__, "epsilon": 30.0, "step_down": 2})
    v = llc(probe, two, generator=gen).values
    assert v["llc/step_downs"] == 2 and v["llc/epsilon"] == pytest.approx(30 / 9)
    assert math.isnan(v["llc/mean"]) and v["llc/flag/diverged"] == 3


def test_batched_step_down_reruns_only_the_diverged_checkpoints():
    class Scaled(nn.Module):
        """½ s² |w|² (curvature s² in w): diverges at ε = 0.003 where s = 10 only."""

        def __init__(self):
            super().__init__()
            self.s = nn.Parameter(torch.ones(1, dtype=torch.float64))
            self.w = nn.Parameter(torch.zeros(4, dtype=torch.float64))

        def loss(self):
            return 0.5 * (self.s**2).sum() * (self.w**2).sum()

    m = Scaled()
    probe = Probe(m, m.loss, N)
    states = [
        [torch.full((1,), s, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)]
        for s in (10.0, 1.0)
    ]
    gens = [step_generator(0, k) for k in range(2)]
    calls = []

    def estimate(idx, s):
        calls.append((idx, s.epsilon))
        return llc_batch(probe, [states[i] for i in idx], s, generators=[gens[i] for i in idx])

    s = LLCSettings(epsilon=0.003, gamma=1.0, chains=2, draws=40, burn_in=5)
    stiff, soft = with_step_down(estimate, 2, s)
    assert calls[0] == ([0, 1], 0.003) and calls[1] == ([0], 0.001)
    assert stiff.step_downs >= 1 and stiff.ok.all() and stiff.epsilon < 0.003
    assert soft.step_downs == 0 and soft.epsilon == 0.003


# ---- per-preset defaults -----------------------------------------------------------------
def test_preset_defaults_apply_under_the_users_fields():
    defaults = {"llc": {"epsilon": 1e-4, "gamma": 300.0}}
    got = resolve(["llc", "hessian"], {"llc": {"epsilon": 5e-5}}, defaults)
    assert got["llc"].epsilon == 5e-5 and got["llc"].gamma == 300.0
    assert resolve(["hessian"], None, defaults).keys() == {"hessian"}
    assert resolve(["llc"], {"llc": LLCSettings(gamma=7.0)}, defaults)["llc"].gamma == 7.0


def test_the_calibrated_grokking_presets_record_their_llc_settings():
    presets = phenomena.get("grokking").presets
    for name in ("nanda2023", "quick", "small"):
        fields = presets[name].signals.get("llc")
        assert fields, f"grokking:{name} has no calibrated LLC settings"
        LLCSettings(**fields)  # valid
    # the flagship preset: the default ε 3e-4 diverged on it (issue 20), its own is smaller
    assert presets["nanda2023"].signals["llc"]["epsilon"] < LLCSettings().epsilon


def test_measure_uses_the_presets_defaults_and_steps_down_on_a_run(tmp_path):
    run = api.run(
        "grokking", "quick", GROKKING | {"threads": 1}, out=tmp_path, progress=False, report=False
    )
    dst = tmp_path / "copy"
    shutil.copytree(run.path, dst)
    seen = []
    cheap = {"chains": 2, "draws": 6, "burn_in": 2}
    table = api.measure(
        run.path,
        ["llc"],
        settings={"llc": cheap},
        steps=[40],
        progress=False,
        on_warning=seen.append,
    )
    v = table.set_index("key")["value"]
    want = phenomena.get("grokking").presets["quick"].signals["llc"]["epsilon"]
    assert v["llc/epsilon"] == want and v["llc/step_downs"] == 0
    # ε = 10 diverges on this model: ε is divided by 3 until the chains sample (≤ 8 times)
    big = {**cheap, "epsilon": 10.0, "step_down": 8}
    table = api.measure(
        dst, ["llc"], settings={"llc": big}, steps=[40], progress=False, on_warning=seen.append
    )
    v = table.set_index("key")["value"]
    assert 1 <= v["llc/step_downs"] <= 8 and v["llc/epsilon"] < 10.0
    assert math.isfinite(v["llc/mean"])
    notes = [w["message"] for w in read_signals_json(_open(dst))["warnings"]]
    assert any("stepped down to epsilon=" in n for n in notes)


def _open(path):
    from phasewatch.store import open_run

    return open_run(path)
