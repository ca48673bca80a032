"""Induction scores on hand-built attention patterns and OV circuits with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from phasewatch.phenomena.induction import scores as sc


def repeated_tokens(batch: int, half: int, vocab: int = 50, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    block = torch.rand(batch, vocab, generator=g).argsort(-1)[:, :half]  # distinct tokens
    return torch.cat([block, block], dim=1)


def uniform_causal(batch: int, heads: int, t: int) -> torch.Tensor:
    a = torch.tril(torch.ones(t, t))
    return (a / a.sum(-1, keepdim=True)).expand(batch, heads, t, t)


def perfect_induction(tokens: torch.Tensor) -> torch.Tensor:
    """All attention on the token after the earlier copy; position 0 (or no copy) on itself."""
    b, t = tokens.shape
    a = torch.zeros(b, t, t)
    half = t // 2
    for q in range(t):
        if q >= half:
            a[:, q, q - half + 1] = 1.0
        else:
            a[:, q, q] = 1.0
    return a[:, None]


def test_induction_targets_mark_the_token_after_each_earlier_copy():
    tokens = torch.tensor([[7, 3, 9, 7, 3, 9]])
    mask = sc.induction_targets(tokens)[0]
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[3, 1] = expected[4, 2] = expected[5, 3] = True  # 7->3, 3->9, 9->(second)7
    assert torch.equal(mask, expected)


def test_prefix_matching_perfect_head_scores_one_and_other_heads_less():
    tokens = repeated_tokens(4, 20)
    perfect = perfect_induction(tokens)
    prev = torch.zeros_like(perfect)  # a previous-token head (position 0 on itself)
    prev[..., 0, 0] = 1.0
    idx = torch.arange(1, 40)
    prev[:, 0, idx, idx - 1] = 1.0
    pattern = torch.cat([perfect, prev], dim=1)
    score = sc.prefix_matching_score(pattern, tokens)
    assert score[0].item() == pytest.approx(1.0, abs=1e-6)
    assert score[1].item() == pytest.approx(0.0, abs=1e-6)


def test_prefix_matching_uniform_head_scores_one_over_position():
    t, half = 40, 20
    tokens = repeated_tokens(3, half)
    score = sc.prefix_matching_score(uniform_causal(3, 2, t), tokens)
    # one earlier copy per query in the second half: 1 / (q + 1), q = half .. t-1
    expected = sum(1 / (q + 1) for q in range(half, t)) / half
    torch.testing.assert_close(score, torch.full((2,), expected), rtol=1e-5, atol=0)
    assert 1 / t < expected < 1 / half  # about 1/position


def test_prefix_matching_counts_every_earlier_copy():
    """Three copies: the uniform head's mass on targets doubles in the third copy."""
    block = torch.arange(5)
    tokens = torch.cat([block] * 3)[None]
    t = tokens.shape[1]
    score = sc.prefix_matching_score(uniform_causal(1, 1, t), tokens)
    expected = (
        sum(1 / (q + 1) for q in range(5, 10)) + sum(2 / (q + 1) for q in range(10, 15))
    ) / 10
    assert score.item() == pytest.approx(expected, rel=1e-6)


def test_prefix_matching_without_repeats_is_nan():
    tokens = torch.arange(10)[None]
    assert torch.isnan(sc.prefix_matching_score(uniform_causal(1, 1, 10), tokens)).all()


def test_previous_token_score_known_answers():
    t = 30
    a = torch.zeros(2, 1, t, t)
    a[:, 0, 0, 0] = 1
    idx = torch.arange(1, t)
    a[:, 0, idx, idx - 1] = 1
    assert sc.previous_token_score(a).item() == pytest.approx(1.0)
    uniform = sc.previous_token_score(uniform_causal(2, 1, t)).item()
    assert uniform == pytest.approx(sum(1 / (q + 1) for q in range(1, t)) / (t - 1))


def _ov(d: int, dh: int, heads: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """W_E = W_U = identity (vocab = d_model); head h's OV = W_V^h W_O^h = heads[h]."""
    W_V = torch.stack([m[:, :dh] for m in heads])  # (H, d, dh) via a rank-dh factorisation
    W_O = torch.stack([torch.eye(d)[:dh] for _ in heads])  # (H, dh, d)
    return torch.eye(d), W_V, W_O, torch.eye(d)


def test_copying_score_known_answers():
    d, dh = 8, 4
    g = torch.Generator().manual_seed(0)
    # OV circuit = projection onto the first dh tokens: copies them -> +1
    copy = torch.eye(d)
    anti = -torch.eye(d)
    # a 90-degree rotation in two planes: eigenvalues +-i, no copying -> 0
    rot = torch.zeros(d, d)
    rot[0, 1], rot[1, 0], rot[2, 3], rot[3, 2] = 1.0, -1.0, 1.0, -1.0
    mixed = torch.diag(torch.tensor([3.0, 1.0, -1.0, -1.0] + [0.0] * 4))  # (3+1-2)/6
    W_E, W_V, W_O, W_U = _ov(d, dh, [copy, anti, rot, mixed])
    score = sc.copying_score(W_E, W_V, W_O, W_U)
    expected = torch.tensor([1.0, -1.0, 0.0, 2 / 6])
    torch.testing.assert_close(score, expected, atol=1e-6, rtol=0)
    # the statistic ignores a change of basis of the residual stream and a positive scale
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    s2 = sc.copying_score(W_E @ Q * 3.0, Q.T @ W_V, W_O @ Q, Q.T @ W_U)
    torch.testing.assert_close(s2, expected, atol=1e-5, rtol=0)


def test_copying_score_of_random_circuits_is_near_zero_and_of_zero_is_zero():
    g = torch.Generator().manual_seed(1)
    v, d, dh, h = 64, 32, 8, 200
    W_E = torch.randn(v, d, generator=g)
    W_U = torch.randn(d, v, generator=g)
    W_V = torch.randn(h, d, dh, generator=g)
    W_O = torch.randn(h, dh, d, generator=g)
    s = sc.copying_score(W_E, W_V, W_O, W_U)
    assert abs(s.mean().item()) < 0.05 and s.abs().max() < 0.9
    zero = sc.copying_score(W_E, torch.zeros(1, d, dh), torch.zeros(1, dh, d), W_U)
    assert zero.item() == 0.0


def test_copying_score_rejects_unequal_vocabularies():
    with pytest.raises(ValueError, match="equal input/output vocabularies"):
        sc.copying_score(
            torch.zeros(5, 4), torch.zeros(1, 4, 2), torch.zeros(1, 2, 4), torch.zeros(4, 6)
        )


def test_ov_eigenvalues_equal_those_of_the_full_vocab_matrix():
    g = torch.Generator(device="cpu").manual_seed(2)
    v, d, dh = 20, 10, 3
    W_E, W_U = torch.randn(v, d, generator=g).double(), torch.randn(d, v, generator=g).double()
    W_V = torch.randn(1, d, dh, generator=g).double()
    W_O = torch.randn(1, dh, d, generator=g).double()
    small = sc.ov_circuit_eigenvalues(W_E, W_V, W_O, W_U)[0]
    full = torch.linalg.eigvals(W_E @ W_V[0] @ W_O[0] @ W_U)
    top = full[full.abs().argsort(descending=True)[:dh]]  # the rest are ~0 (rank dh)

    def ordered(z: torch.Tensor) -> torch.Tensor:
        pairs = torch.stack([z.real, z.imag], -1)
        return pairs[torch.argsort(pairs[:, 0] * 1e3 + pairs[:, 1])]

    torch.testing.assert_close(ordered(small), ordered(top), rtol=1e-8, atol=1e-8)
    assert full.abs().sort().values[: v - dh].max() < 1e-8


def test_per_position_loss_and_icl_score():
    v, t = 5, 6
    tokens = torch.tensor([[0, 1, 2, 3, 4, 0]])
    logits = torch.zeros(1, t, v)  # uniform: log 5 everywhere
    logits[0, 3, 4] = 100.0  # position 3 predicts token 4 with certainty
    losses = sc.per_position_loss(logits, tokens)
    assert losses.shape == (t - 1,)
    assert losses[0].item() == pytest.approx(math.log(v))
    assert losses[3].item() == pytest.approx(0.0, abs=1e-6)
    assert sc.icl_score(losses, 0, 3) == pytest.approx(-math.log(v), abs=1e-6)


@pytest.mark.parametrize("n_ctx,expected", [(85, (7, 67)), (512, (41, 409)), (4, (0, 2))])
def test_icl_positions_keep_olssons_one_to_ten_ratio(n_ctx, expected):
    early, late = sc.icl_positions(n_ctx)
    assert (early, late) == expected
    half = n_ctx // 2
    assert early + 1 < half <= late  # early predicts a first-half token, late one in the repeat
    with pytest.raises(ValueError, match="n_ctx=3"):
        sc.icl_positions(3)


def test_transition_steps_locate_a_sigmoid_and_ignore_flat_curves():
    steps = list(range(0, 2000, 10))
    curve = [1 / (1 + math.exp(-(s - 1000) / 40)) for s in steps]
    tr = sc.transition_steps(steps, curve, min_change=0.2)
    assert tr["mid"] == 1000 and tr["start"] < 1000 < tr["end"]
    assert 900 <= tr["start"] <= 920 and 1080 <= tr["end"] <= 1100
    falling = sc.transition_steps(steps, [-v for v in curve], min_change=0.2)
    assert falling["mid"] == 1000 and falling["change"] == pytest.approx(-1.0, abs=1e-3)
    flat = sc.transition_steps(steps, [0.01 * (s % 3) for s in steps], min_change=0.2)
    assert flat["start"] is None and flat["mid"] is None


def test_heads_above_lists_heads_best_first_with_their_first_crossing():
    history = [torch.zeros(2, 3), torch.tensor([[0.0, 0.6, 0.0], [0.2, 0.0, 0.0]])]
    history.append(torch.tensor([[0.0, 0.7, 0.0], [0.9, 0.4, 0.0]]))
    found = sc.heads_above(history[-1], history, [0, 50, 100], threshold=0.5)
    assert found == [(1, 0, 100), (0, 1, 50)]
    assert sc.heads_above(history[-1], history, [0, 50, 100], threshold=0.95) == []


def test_attention_table_is_the_causal_triangle():
    t = 5
    pattern = torch.tril(torch.ones(t, t))
    pattern = pattern / pattern.sum(-1, keepdim=True)
    table = sc.attention_table(pattern, torch.arange(10, 10 + t))
    assert len(table) == t * (t + 1) // 2 and (table["key"] <= table["query"]).all()
    assert table.groupby("query")["weight"].sum().round(6).eq(1.0).all()
    assert (table["query_token"] == table["query"] + 10).all()
