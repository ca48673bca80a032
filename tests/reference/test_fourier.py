"""Fourier progress measures on hand-built tables whose answers are known."""

from __future__ import annotations

import math

import pytest
import torch

from phasewatch.phenomena.grokking import fourier

P = 13


def _addition_logits(keys: dict[int, float], p: int = P) -> torch.Tensor:
    """L[a,b,c] = sum_k amp_k cos(w_k (a+b-c)): a perfect Fourier circuit for a + b."""
    x = torch.arange(p, dtype=torch.float64)
    phase = x[:, None, None] + x[None, :, None] - x[None, None, :]
    return sum(amp * torch.cos(2 * math.pi * k / p * phase) for k, amp in keys.items())


def test_basis_is_orthonormal():
    F = fourier.fourier_basis(P)
    torch.testing.assert_close(F @ F.T, torch.eye(P, dtype=torch.float64))


def test_basis_rejects_even_modulus():
    with pytest.raises(ValueError, match="p=12"):
        fourier.fourier_basis(12)


def test_gini_known_values():
    assert fourier.gini(torch.ones(10)) == pytest.approx(0.0)
    assert fourier.gini(torch.tensor([0.0, 0, 0, 5])) == pytest.approx(1 - 1 / 4)
    # two equal non-zero among four: sum|xi-xj| = 2*2*2*1 = 8; /(2*4*2) = 0.5
    assert fourier.gini(torch.tensor([1.0, 1, 0, 0])) == pytest.approx(0.5)


def test_frequency_norms_pick_out_the_embedded_frequency():
    x = torch.arange(P, dtype=torch.float64)
    W = torch.stack([3 * torch.cos(2 * math.pi * 4 * x / P), torch.sin(2 * math.pi * 4 * x / P)], 1)
    norms = fourier.frequency_norms(W)
    assert norms.argmax().item() + 1 == 4
    # ||cos||^2 = p/2, so the frequency-4 norm is sqrt(9 p/2 + p/2)
    assert norms[3].item() == pytest.approx(math.sqrt(10 * P / 2))
    assert norms.sum().item() == pytest.approx(norms[3].item())


def test_restricted_logits_reconstruct_a_pure_circuit():
    keys = {2: 4.0, 5: 3.0}
    L = _addition_logits(keys) + torch.arange(P, dtype=torch.float64)  # + per-answer bias
    part = fourier.key_frequency_logits(L, [2, 5])
    torch.testing.assert_close(part, _addition_logits(keys))
    # keeping the key frequencies + mean correction leaves the loss unchanged
    a = torch.arange(P)
    labels = (a[:, None] + a[None, :]) % P
    full = -L.log_softmax(-1).gather(-1, labels[..., None]).mean().item()
    assert fourier.restricted_loss(L, [2, 5]) == pytest.approx(full)


def test_excluded_loss_is_chance_when_only_key_frequencies_carry_the_answer():
    L = _addition_logits({3: 6.0})
    mask = torch.rand(P, P, generator=torch.Generator().manual_seed(0)) < 0.5
    assert fourier.excluded_loss(L, [3], mask) == pytest.approx(math.log(P))
    # excluding a frequency the circuit does not use changes nothing
    a = torch.arange(P)
    labels = (a[:, None] + a[None, :]) % P
    full = -L.log_softmax(-1).gather(-1, labels[..., None])[..., 0][mask].mean().item()
    assert fourier.excluded_loss(L, [1], mask) == pytest.approx(full)
    # and the restricted loss with the wrong frequency is chance
    assert fourier.restricted_loss(L, [1]) == pytest.approx(math.log(P))


def test_key_frequencies_from_hand_built_neurons():
    x = torch.arange(P, dtype=torch.float64)
    w = lambda k: 2 * math.pi * k / P  # noqa: E731
    a, b = x[:, None], x[None, :]
    neurons = []
    for k, n in ((3, 6), (5, 4)):  # 6 neurons of frequency 3, 4 of frequency 5
        for j in range(n):
            ph = 0.3 * j
            neurons.append(torch.cos(w(k) * (a + b) + ph) + 0.5 * torch.cos(w(k) * a))
    gen = torch.Generator().manual_seed(1)
    neurons.append(torch.randn(P, P, generator=gen, dtype=torch.float64))  # an unclustered neuron
    acts = torch.stack(neurons, -1)
    fracs = fourier.neuron_frequency_fractions(acts)
    assert fracs[:10].max(-1).values.min().item() == pytest.approx(1.0)
    assert fracs[10].max().item() < 0.85
    keys, counts = fourier.key_frequencies(acts, min_fraction=0.2)
    assert keys == [3, 5]
    assert counts == {3: 6, 5: 4}
    keys, _ = fourier.key_frequencies(acts, min_fraction=0.5)  # needs >= 6 neurons
    assert keys == [3]
