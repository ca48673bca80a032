"""The training path ``fast_logits`` (fused QKV projection, :class:`CausalAttention`) is the
same function as the hooked model: logits, gradients, Hessian-vector products (double
backward), batched seeds (vmap) and forward-mode HVPs agree in float64; attention
patterns from the hook points are the kernel's own; the Hessian signal runs on it."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, grad, jvp, vjp, vmap

from phasewatch.config import TrainConfig
from phasewatch.models import (
    NormedTransformer,
    Transformer,
    TransformerConfig,
    fast_logits,
    run_with_cache,
)
from phasewatch.models.transformer import (
    _PAIRS_PER_CHUNK,
    CausalAttention,
    _query_blocks,
    explicit_attention,
)
from phasewatch.phenomena.induction.config import InductionConfig
from phasewatch.phenomena.induction.task import InductionTask, next_token_loss
from phasewatch.signals.base import Probe
from phasewatch.signals.hessian import HessianOperator, HessianSettings, hessian


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one thread avoids oversubscribing 2 shared cores."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _model(n_ctx: int = 70, d_mlp: int = 0, layernorm: bool = True, seed: int = 0):
    cfg = TransformerConfig(
        d_vocab=13, d_vocab_out=13, n_ctx=n_ctx, d_model=16, n_heads=3, d_head=5, d_mlp=d_mlp,
        n_layers=2,
    )  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    return NormedTransformer(cfg, layernorm=layernorm, generator=g).double()


def _tokens(batch: int = 23, n_ctx: int = 70, seed: int = 1) -> torch.Tensor:
    """23 sequences × 3 heads = 69 (sequence, head) pairs: two chunks, the second partial."""
    return torch.randint(0, 13, (batch, n_ctx), generator=torch.Generator().manual_seed(seed))


def _params(model):
    return [p for p in model.parameters()]


def test_query_blocks_cover_every_position_once():
    for t in (1, 5, 31, 70, 85, 200):
        blocks = _query_blocks(t)
        assert blocks[0][0] == 0 and blocks[-1][1] == t
        assert all(b0[1] == b1[0] for b0, b1 in zip(blocks, blocks[1:]))
    assert len(_query_blocks(85)) == 3 and len(_query_blocks(10)) == 1


@pytest.mark.parametrize(
    "n_ctx,d_mlp,layernorm", [(70, 0, True), (85, 0, False), (20, 24, True), (9, 0, True)]
)
def test_fast_logits_and_gradients_equal_the_hooked_model_in_float64(n_ctx, d_mlp, layernorm):
    model, tokens = _model(n_ctx, d_mlp, layernorm), _tokens(n_ctx=n_ctx)
    assert _PAIRS_PER_CHUNK < 3 * len(tokens) < 2 * _PAIRS_PER_CHUNK  # a partial second chunk
    fast, full = fast_logits(model, tokens), model(tokens)
    torch.testing.assert_close(fast, full, rtol=0, atol=1e-12)
    g_fast = torch.autograd.grad(next_token_loss(fast, tokens), _params(model))
    g_full = torch.autograd.grad(next_token_loss(full, tokens), _params(model))
    for a, b in zip(g_fast, g_full):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_fast_logits_of_a_prefix_equal_the_hooked_model():
    model, tokens = _model(), _tokens()
    torch.testing.assert_close(fast_logits(model, tokens[:, :33]), model(tokens[:, :33]))


def test_hessian_vector_products_through_the_kernel_equal_the_explicit_path():
    """Double backward: the kernel's backward falls back to differentiable operations."""
    model, tokens = _model(), _tokens()
    params = _params(model)
    v = [torch.randn_like(p) for p in params]

    def hvp(logits):
        g = torch.autograd.grad(next_token_loss(logits(tokens), tokens), params, create_graph=True)
        return torch.autograd.grad(sum((a * b).sum() for a, b in zip(g, v)), params)

    fast = hvp(lambda t: fast_logits(model, t))
    full = hvp(model)
    assert max(float(h.abs().max()) for h in full) > 1e-3  # not trivially zero
    for a, b in zip(fast, full):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_vmap_over_members_and_forward_mode_hvp_match_one_at_a_time():
    models = [_model(seed=s) for s in range(3)]
    tokens = torch.stack([_tokens(seed=s) for s in range(3)])  # (K, B, T)
    names = [n for n, _ in models[0].named_parameters()]
    stacked = {
        f"m.{n}": torch.stack([dict(m.named_parameters())[n].detach() for m in models])
        for n in names
    }
    module = _Fast(models[0])

    def loss(params, toks):
        return next_token_loss(functional_call(module, params, (toks,)), toks)

    per_member = torch.stack(
        [next_token_loss(fast_logits(m, t), t) for m, t in zip(models, tokens)]
    )
    torch.testing.assert_close(vmap(loss)(stacked, tokens), per_member, rtol=0, atol=1e-12)
    p0 = {n: p[0] for n, p in stacked.items()}
    v = {n: torch.randn_like(p) for n, p in p0.items()}
    g = grad(loss)
    _, forward_over_reverse = jvp(lambda p: g(p, tokens[0]), (p0,), (v,))
    reverse_over_reverse = vjp(lambda p: g(p, tokens[0]), p0)[1](v)[0]
    for n in p0:
        torch.testing.assert_close(
            forward_over_reverse[n], reverse_over_reverse[n], atol=1e-12, rtol=0
        )


class _Fast(torch.nn.Module):
    """``fast_logits`` as a module, for :func:`functional_call` (parameters ``model.*``)."""

    def __init__(self, model: NormedTransformer) -> None:
        super().__init__()
        self.m = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return fast_logits(self.m, tokens)


def test_hook_patterns_equal_the_kernels_pattern_blocks():
    model, tokens = _model(), _tokens()
    name = "blocks.0.attn.hook_pattern"
    _, cache = run_with_cache(model, tokens, names=[name])
    a = model.blocks[0].attn
    h = model.normalize(model.embed.W_E[tokens] + model.pos_embed.W_pos[: tokens.shape[1]])
    q, k, v = (torch.einsum("bpd,hde->bhpe", h, w).flatten(0, 1) for w in (a.W_Q, a.W_K, a.W_V))
    out = CausalAttention.apply(torch.stack((q * a.scale, k, v)))
    pattern = cache[name].flatten(0, 1)  # (B·H, T, T)
    for (lo, hi), block in zip(_query_blocks(tokens.shape[1]), out[1:]):
        torch.testing.assert_close(block, pattern[:, lo:hi, :hi], rtol=0, atol=1e-12)
        assert float(pattern[:, lo:hi, hi:].abs().sum()) == 0.0  # causal: keys > query
    torch.testing.assert_close(out[0], explicit_attention(q * a.scale, k, v)[0], rtol=0, atol=1e-12)


def _tiny_task() -> InductionTask:
    cfg = InductionConfig(
        vocab=17, n_ctx=40, span_len=6, batch_size=8, eval_batch=8, d_model=16, n_heads=2,
        d_head=8,
    )  # fmt: skip
    return InductionTask(cfg, TrainConfig(steps=10, eval_every=5))


def test_hessian_signal_runs_on_an_induction_model():
    task = _tiny_task()
    probe = Probe(task.model, lambda: task.train_loss(0), n=8)
    settings = HessianSettings(top_k=2, lanczos_steps=6, hutchinson_probes=2, slq_runs=1)
    values = hessian(probe, settings, generator=torch.Generator().manual_seed(0)).values
    assert values["hessian/top_eig/0"] > 0 and torch.isfinite(torch.tensor(values["hessian/trace"]))
    tokens = task.batch(0)
    explicit = Probe(task.model, lambda: next_token_loss(task.model(tokens), tokens), n=8)
    v = torch.randn(HessianOperator(probe).d, dtype=torch.float64)
    torch.testing.assert_close(
        HessianOperator(probe)(v), HessianOperator(explicit)(v), rtol=1e-4, atol=1e-5
    )


def test_float32_training_follows_the_hooked_model():
    """Same init and data, AdamW: the training path tracks the hooked model's losses."""
    curves = []
    for path in ("fast", "hooked"):
        task = _tiny_task()
        opt = torch.optim.AdamW(task.model.parameters(), lr=1e-2)
        curve = []
        for step in range(25):
            tokens = task.batch(step)
            logits = fast_logits(task.model, tokens) if path == "fast" else task.model(tokens)
            loss = next_token_loss(logits, tokens)
            opt.zero_grad()
            loss.backward()
            opt.step()
            curve.append(loss.item())
        curves.append(torch.tensor(curve))
    assert float(curves[0][0] - curves[0][-1]) > 0.1  # it learns
    torch.testing.assert_close(curves[0], curves[1], rtol=1e-4, atol=1e-4)


def test_checkpoint_layout_is_the_base_transformers():
    """No new parameters or buffers: checkpoints load into the base model and back."""
    model = _model()
    base = Transformer(model.cfg).double()
    assert list(model.state_dict()) == list(base.state_dict())
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert shapes["blocks.0.attn.W_Q"] == (3, 16, 5) and shapes["blocks.1.attn.W_O"] == (3, 5, 16)
