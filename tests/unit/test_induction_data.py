"""Induction phenomenon: data generators, config validation, model paths."""

from __future__ import annotations

import pytest
import torch

from phasewatch.config import TrainConfig
from phasewatch.errors import ConfigError
from phasewatch.models import NormedTransformer, Transformer, fast_logits
from phasewatch.phenomena.induction import InductionConfig
from phasewatch.phenomena.induction.data import make_batch, markov_chain, repeated_block
from phasewatch.phenomena.induction.task import InductionTask, next_token_loss
from phasewatch.phenomena.streams import generator

SMALL = dict(vocab=32, n_ctx=24, span_len=5, repeats=3, d_model=16, n_heads=2, d_head=8)


@pytest.mark.parametrize("source", ["random", "markov"])
def test_induction_span_repeats_where_claimed(source):
    cfg = InductionConfig(source=source, **SMALL)
    chain = markov_chain(cfg.vocab, 0.1, seed=0) if source == "markov" else None
    tokens, starts = make_batch(cfg, 200, generator(0, 0, 7), chain)
    assert tokens.shape == (200, 24) and starts.shape == (200, 3)
    assert tokens.min() >= 0 and tokens.max() < cfg.vocab
    L, T = cfg.span_len, cfg.n_ctx
    assert (starts[:, 1:] - starts[:, :-1] >= L).all()  # copies do not overlap
    assert (starts[:, 0] >= 0).all() and (starts[:, -1] + L <= T).all()  # inside the context
    idx = starts[..., None] + torch.arange(L)  # (B, R, L)
    copies = tokens.gather(1, idx.flatten(1)).view(200, 3, L)
    assert (copies == copies[:, :1]).all()
    if source == "random":  # span tokens are distinct
        assert all(len(set(row)) == L for row in copies[:, 0].tolist())
    # layouts vary: first copy not always at the start, gaps not constant
    gaps = starts[:, 1] - starts[:, 0]
    assert len(set(starts[:, 0].tolist())) > 3 and len(set(gaps.tolist())) > 3
    # every layout is possible: first copy at 0 and last copy ending at the end both occur
    assert (starts[:, 0] == 0).any() and (starts[:, -1] + L == T).any()


def test_induction_batches_depend_on_seed_and_step_only():
    cfg = InductionConfig(**SMALL)
    task = InductionTask(cfg, TrainConfig(seed=3, threads=1))
    again = InductionTask(cfg, TrainConfig(seed=3, threads=1))
    assert torch.equal(task.batch(5), again.batch(5))
    assert torch.equal(task.batch(5), task.batch(5))  # stateless: calling twice changes nothing
    assert not torch.equal(task.batch(5), task.batch(6))
    other = InductionTask(cfg, TrainConfig(seed=4, threads=1))
    assert not torch.equal(task.batch(5), other.batch(5))
    assert torch.equal(task.rep_tokens, again.rep_tokens)
    assert not torch.equal(task.rep_tokens, other.rep_tokens)
    for name, p in task.model.state_dict().items():
        assert torch.equal(p, again.model.state_dict()[name]), name


def test_induction_markov_text_follows_its_chain():
    chain = markov_chain(16, 0.05, seed=0)
    assert torch.allclose(chain.sum(-1), torch.ones(16, dtype=torch.float64))
    cfg = InductionConfig(source="markov", vocab=16, n_ctx=64, span_len=4, repeats=2)
    tokens, starts = make_batch(cfg, 400, generator(0, 0, 0), chain)
    counts = torch.zeros(16, 16)
    pairs = torch.stack([tokens[:, :-1].flatten(), tokens[:, 1:].flatten()], -1)
    counts.index_put_((pairs[:, 0], pairs[:, 1]), torch.ones(len(pairs)), accumulate=True)
    empirical = counts / counts.sum(-1, keepdim=True)
    # most transitions are chain steps (splices at the copies are few): rows agree closely
    assert (empirical - chain.float()).abs().sum(-1).mean() < 0.25
    uniform_gap = (torch.full((16, 16), 1 / 16) - chain.float()).abs().sum(-1).mean()
    assert uniform_gap > 1.0  # the chain is far from uniform, so the check has teeth


def test_induction_repeated_block_is_a_block_and_its_repeat():
    cfg = InductionConfig(**{**SMALL, "n_ctx": 25})
    seqs = repeated_block(cfg, 10, generator(0, 2))
    h = 12
    assert seqs.shape == (10, 25)
    assert torch.equal(seqs[:, h : 2 * h], seqs[:, :h]) and torch.equal(seqs[:, 24], seqs[:, 0])
    assert all(len(set(r)) == h for r in seqs[:, :h].tolist())  # distinct when vocab allows


@pytest.mark.parametrize(
    "field,value,match",
    [
        (
            "n_ctx",
            20,
            r"n_ctx=20 is invalid; allowed: an integer >= span_len \* repeats \(16 \* 2\)",
        ),
        ("n_layers", 0, r"n_layers=0 is invalid; allowed: an integer in 1..4"),
        ("n_layers", 5, r"n_layers=5 is invalid; allowed: an integer in 1..4"),
        ("vocab", 10, r"vocab=10 is invalid; allowed: an integer >= span_len \(16\)"),
        ("repeats", 0, r"repeats=0 is invalid; allowed: an integer >= 1"),
        ("source", "wiki", r"source='wiki' is invalid; allowed: random, markov"),
        ("markov_concentration", 0.0, r"markov_concentration=0.0 is invalid; allowed: a float > 0"),
        ("d_head", 0, r"d_head=0 is invalid"),
    ],
)
def test_induction_bad_config_names_field_and_allowed_values(field, value, match):
    with pytest.raises(ConfigError, match=match):
        InductionConfig(**{field: value})


@pytest.mark.parametrize("layernorm", [True, False])
def test_induction_fast_path_equals_hooked_forward_and_gradients(layernorm):
    cfg = InductionConfig(**SMALL, n_layers=2, layernorm=layernorm)
    task = InductionTask(cfg, TrainConfig(seed=1, threads=1))
    tokens = task.batch(0)
    model = task.model
    full = model(tokens)
    torch.testing.assert_close(fast_logits(model, tokens), full, rtol=1e-5, atol=1e-5)
    params = list(model.parameters())
    g_full = torch.autograd.grad(next_token_loss(model(tokens), tokens), params)
    g_fast = torch.autograd.grad(next_token_loss(fast_logits(model, tokens), tokens), params)
    for (name, _), a, b in zip(model.named_parameters(), g_full, g_fast):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)


def test_induction_model_without_layernorm_is_the_base_transformer():
    cfg = InductionConfig(**SMALL, layernorm=False)
    g = generator(0, 3)
    normed = NormedTransformer(cfg.transformer(), layernorm=False, generator=g)
    base = Transformer(cfg.transformer())
    base.load_state_dict(normed.state_dict())  # same parameter names and shapes
    tokens = torch.randint(0, cfg.vocab, (4, cfg.n_ctx))
    torch.testing.assert_close(normed(tokens), base(tokens))


def test_induction_evaluate_keys_and_ranges():
    cfg = InductionConfig(**SMALL, eval_batch=8)
    out = InductionTask(cfg, TrainConfig(seed=0, threads=1)).evaluate()
    heads = [f"L{layer}H{h}" for layer in range(2) for h in range(2)]
    for score in ("prefix_matching", "previous_token", "copying"):
        for name in heads:
            assert f"heads/{score}/{name}" in out
    assert {f"loss/pos/{i}" for i in range(cfg.n_ctx - 1)} <= set(out)
    assert all(isinstance(v, float) for v in out.values())
    for name in heads:
        assert 0 <= out[f"heads/prefix_matching/{name}"] <= 1
        assert -1 <= out[f"heads/copying/{name}"] <= 1
    # untrained: loss near log(vocab) everywhere, so the ICL score is near 0
    assert abs(out["icl/score"]) < 0.5 and abs(out["loss/repeated"] - out["loss/first_half"]) < 0.3


def test_induction_per_sample_loss_averages_to_the_training_loss():
    cfg = InductionConfig(**SMALL)
    task = InductionTask(cfg, TrainConfig(seed=2, threads=1))
    ps = task.per_sample_loss(4)
    assert ps.shape == (cfg.batch_size,)
    torch.testing.assert_close(ps.mean(), task.train_loss(4), rtol=1e-5, atol=1e-6)
    assert torch.equal(task.probe_inputs(4), task.batch(4))


def test_induction_training_loss_is_twice_differentiable():
    """The Hessian signal needs Hessian-vector products of ``train_loss``."""
    task = InductionTask(InductionConfig(**SMALL), TrainConfig(seed=0, threads=1))
    params = list(task.model.parameters())
    grads = torch.autograd.grad(task.train_loss(0), params, create_graph=True)
    vec = [torch.randn_like(p) for p in params]
    hv = torch.autograd.grad(sum((g * v).sum() for g, v in zip(grads, vec)), params)
    # against the hooked forward
    tokens = task.batch(0)
    grads2 = torch.autograd.grad(
        next_token_loss(task.model(tokens), tokens), params, create_graph=True
    )
    hv2 = torch.autograd.grad(sum((g * v).sum() for g, v in zip(grads2, vec)), params)
    for a, b in zip(hv, hv2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert max(a.abs().max() for a in hv) > 0
