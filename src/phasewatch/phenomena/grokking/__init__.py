"""Grokking on modular arithmetic (Power et al. 2022; Nanda et al. 2023).

Inputs are the three tokens ``a b =`` (vocabulary p + 1, ``=`` is token p); the model
reads the logits (p classes) at the last position. A random ``train_frac`` of the pairs
is the training set, trained full-batch; the rest is the test set.

Presets:
    nanda2023: the exact setup of Nanda et al. 2023 (arXiv 2301.05217, §3): p = 113,
        a + b, 30% train, 1 layer, d_model 128, 4 heads × 32, d_mlp 512, AdamW lr 1e-3,
        weight decay 1.0, betas (0.9, 0.98), 10 warm-up steps, loss in float64.
    quick: Nanda's model and optimiser on p = 59 with 30% train and lr 3e-3, so that
        delayed generalisation shows in about a minute on 2 CPU cores: memorisation by
        step ~50, generalisation at ~1.5k-3.5k steps (seeds 0-2 measured here).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from phasewatch.config import OnsetRule, TrainConfig, require, require_choice
from phasewatch.models import Transformer, TransformerConfig, run_with_cache
from phasewatch.phenomena.base import Findings, Preset, register
from phasewatch.phenomena.grokking import fourier

# The operations of Power et al. 2022 (Table 1), as functions of (a, b) mod p.
# Division is a · b^{-1} and skips b = 0.
OPERATIONS: dict[str, Callable[[Tensor, Tensor, int], Tensor]] = {
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
    "div": lambda a, b, p: (a * _inverse(b, p)) % p,
    "x2+y2": lambda a, b, p: (a * a + b * b) % p,
    "x2+xy+y2": lambda a, b, p: (a * a + a * b + b * b) % p,
    "x3+xy": lambda a, b, p: (a * a * a + a * b) % p,
}


def _inverse(b: Tensor, p: int) -> Tensor:
    return torch.tensor([pow(int(x), p - 2, p) for x in b.tolist()], dtype=b.dtype)


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


@dataclass(frozen=True)
class GrokkingConfig:
    """Task and model of a grokking run.

    Attributes:
        p: the modulus, a prime >= 3.
        op: the operation (Power et al. 2022): add, sub, mul, div, x2+y2, x2+xy+y2, x3+xy.
        train_frac: fraction of the pairs in the training set, in (0, 1).
        d_model, n_heads, d_head, d_mlp: the one-layer transformer's shape.
        fast: compute only the read-out position's path (readout_logits): the same maths
            as the full-sequence forward, about 3x faster; --no-fast runs every position.
    """

    p: int = 113
    op: str = "add"
    train_frac: float = 0.3
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    fast: bool = True

    def __post_init__(self) -> None:
        require(_is_prime(self.p) and self.p >= 3, "p", "a prime >= 3 (e.g. 59, 97, 113)", self.p)
        require_choice("op", self.op, OPERATIONS)
        require(0 < self.train_frac < 1, "train_frac", "a float in (0, 1)", self.train_frac)
        for name in ("d_model", "n_heads", "d_head", "d_mlp"):
            require(getattr(self, name) >= 1, name, "an integer >= 1", getattr(self, name))

    def transformer(self) -> TransformerConfig:
        return TransformerConfig(
            d_vocab=self.p + 1,
            d_vocab_out=self.p,
            n_ctx=3,
            d_model=self.d_model,
            n_heads=self.n_heads,
            d_head=self.d_head,
            d_mlp=self.d_mlp,
            n_layers=1,
        )


@dataclass(frozen=True)
class ModularData:
    """Every pair (a, b) with its label and split.

    Attributes:
        p: the modulus.
        a, b, labels: (n_pairs,) int64; ``labels = op(a, b) mod p``.
        train: (n_pairs,) bool, the random training split.
    """

    p: int
    a: Int[Tensor, " n"]
    b: Int[Tensor, " n"]
    labels: Int[Tensor, " n"]
    train: Tensor

    def tokens(self) -> Int[Tensor, "n 3"]:
        """The ``a b =`` token sequences (``=`` is token p)."""
        return torch.stack([self.a, self.b, torch.full_like(self.a, self.p)], dim=-1)


def make_data(cfg: GrokkingConfig, seed: int) -> ModularData:
    """All pairs for ``cfg.op`` mod ``cfg.p`` and a seeded random train split.

    The split shuffles the pairs and takes the first ``int(train_frac · n_pairs)``, as in
    Nanda et al.'s code (p = 113, 30% → 3,830 train / 8,939 test).
    """
    p = cfg.p
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).unbind(-1)
    if cfg.op == "div":
        keep = b != 0
        a, b = a[keep], b[keep]
    labels = OPERATIONS[cfg.op](a, b, p)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(a), generator=g)
    train = torch.zeros(len(a), dtype=torch.bool)
    train[order[: int(cfg.train_frac * len(a))]] = True
    return ModularData(p=p, a=a, b=b, labels=labels, train=train)


def readout_logits(
    model: Transformer, a: Int[Tensor, " batch"], b: Int[Tensor, " batch"]
) -> Float[Tensor, "batch p"]:
    """Logits at the ``=`` position of ``a b =`` — the same function as
    ``model(tokens)[:, -1]`` for a one-layer model, computed in a fraction of the FLOPs.

    Only the read-out position's residual stream is computed. Its query is the same for
    every example (the token is always ``=``), and the keys, attention scores and OV
    outputs of positions 0 and 1 depend on one token each, so they are formed once per
    vocabulary entry (p rows) and gathered per example. Hook points do not fire; use
    ``model(tokens)`` with :func:`~phasewatch.models.run_with_cache` for activations.
    """
    attn, mlp = model.blocks[0].attn, model.blocks[0].mlp
    W_E, W_pos = model.embed.W_E, model.pos_embed.W_pos
    p = W_E.shape[0] - 1
    x_tok = W_E[:p]  # (p, D): digit embeddings
    x0, x1 = x_tok + W_pos[0], x_tok + W_pos[1]  # (p, D) residual at positions 0, 1
    x2 = W_E[p] + W_pos[2]  # (D,) residual at the '=' position
    q = torch.einsum("d,hde->he", x2, attn.W_Q)  # (H, dh)
    x_all = torch.cat([x0, x1, x2[None]])  # (2p+1, D)
    k = torch.einsum("vd,hde->vhe", x_all, attn.W_K)  # (2p+1, H, dh)
    scores = torch.einsum("vhe,he->vh", k, q) * attn.scale  # (2p+1, H)
    ov = torch.einsum("vd,hde,hem->vhm", x_all, attn.W_V, attn.W_O)  # (2p+1, H, D)
    h, d = ov.shape[1:]
    ov_flat = ov.reshape(len(ov), h * d)  # (2p+1, H*D)
    s = torch.stack([scores[a], scores[p + b], scores[2 * p].expand(len(a), -1)], dim=-1).softmax(
        dim=-1
    )  # (B, H, 3): attention of '=' on positions 0, 1, 2
    rows = F.embedding(torch.stack([a, p + b], dim=1), ov_flat)  # (B, 2, H*D)
    mix = s[..., :2].transpose(1, 2).reshape(-1, 1, 2 * h)  # (B, 1, 2H)
    attn_out = torch.bmm(mix, rows.view(-1, 2 * h, d))[:, 0] + s[..., 2] @ ov[2 * p]  # (B, D)
    resid = x2 + attn_out
    resid = resid + mlp(resid)
    return resid @ model.unembed.W_U


def cross_entropy_f64(logits: Float[Tensor, "batch p"], labels: Int[Tensor, " batch"]) -> Tensor:
    """Mean cross-entropy in nats, computed in float64 as in Nanda et al.'s code."""
    logp = logits.double().log_softmax(-1)
    return -logp.gather(-1, labels[:, None]).mean()


class GrokkingTask:
    """One seed of a grokking run: the model, the data and its metrics."""

    def __init__(self, cfg: GrokkingConfig, train: TrainConfig) -> None:
        self.cfg = cfg
        dev = torch.device(train.device)
        self.data = make_data(cfg, train.seed)
        g = torch.Generator().manual_seed(train.seed)
        self.model = Transformer(cfg.transformer(), generator=g).to(dev)
        d = self.data
        self.a, self.b, self.labels = d.a.to(dev), d.b.to(dev), d.labels.to(dev)
        self.train_idx = d.train.nonzero()[:, 0].to(dev)
        self.train_mask = d.train.to(dev)
        self._tokens = d.tokens().to(dev)

    def logits(self, idx: Tensor | None = None) -> Tensor:
        a, b = (self.a, self.b) if idx is None else (self.a[idx], self.b[idx])
        if self.cfg.fast:
            return readout_logits(self.model, a, b)
        tokens = self._tokens if idx is None else self._tokens[idx]
        return self.model(tokens)[:, -1]

    def train_loss(self, step: int) -> Tensor:
        return cross_entropy_f64(self.logits(self.train_idx), self.labels[self.train_idx])

    def train_batch(self, step: int) -> tuple[Int[Tensor, " n"], Float[Tensor, " n"]]:
        """For batched seeds: this member's training pairs and a 0/1 weight per pair
        (float64; zero-padded rows get weight 0 when members' train fractions differ)."""
        return self.train_idx, torch.ones(len(self.train_idx), dtype=torch.float64)

    def loss_on(self, idx: Int[Tensor, " n"], weight: Float[Tensor, " n"]) -> Tensor:
        """Weighted mean cross-entropy (nats, float64) of pairs ``idx``; with unit weights
        the same as :meth:`train_loss` up to float rounding."""
        logp = self.logits(idx).double().log_softmax(-1)
        nll = -logp.gather(-1, self.labels[idx][:, None])[:, 0]
        return (nll * weight).sum() / weight.sum()

    def per_sample_loss(self, step: int) -> Tensor:
        """Cross-entropy (nats) per training pair, float64; its mean is ``train_loss(step)``."""
        logits = self.logits(self.train_idx).double()
        return -logits.log_softmax(-1).gather(-1, self.labels[self.train_idx, None])[:, 0]

    def probe_inputs(self, step: int) -> Tensor:
        """The ``a b =`` tokens of the training pairs, for hook-point activations."""
        return self._tokens[self.train_idx]

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        logits = self.logits()
        out: dict[str, float] = {}
        for split, mask in (("train", self.train_mask), ("test", ~self.train_mask)):
            lg, y = logits[mask], self.labels[mask]
            out[f"{split}/loss"] = float(cross_entropy_f64(lg, y))
            out[f"{split}/acc"] = float((lg.argmax(-1) == y).double().mean())
        out["weights/total_norm"] = float(
            torch.sqrt(sum(p.detach().double().pow(2).sum() for p in self.model.parameters()))
        )
        W_E = self.model.embed.W_E[: self.cfg.p].detach().double().cpu()
        out["fourier/embed_gini"] = fourier.embed_fourier_gini(W_E)
        for k, v in enumerate(fourier.frequency_norms(W_E).tolist(), start=1):
            out[f"fourier/embed_norm/{k}"] = v
        return out


def logit_table(task: GrokkingTask) -> Float[Tensor, "p p p"]:
    """``logits[a, b, c]`` for every pair (needs a task without division's missing b = 0)."""
    p = task.cfg.p
    with torch.no_grad():
        logits = task.logits()
    return logits.reshape(p, p, p)


def neuron_table(task: GrokkingTask) -> Float[Tensor, "p p d_mlp"]:
    """Read-out position MLP activations ``blocks.0.mlp.hook_post`` for every pair (a, b)."""
    p = task.cfg.p
    name = "blocks.0.mlp.hook_post"
    _, cache = run_with_cache(task.model, task._tokens, names=[name])
    return cache[name][:, -1].reshape(p, p, -1)


class Grokking:
    """The grokking phenomenon (registered as ``grokking``)."""

    name = "grokking"
    config_cls = GrokkingConfig
    batch_fields = ("train_frac",)  # batched seeds: per-member training-pair masks
    default_preset = "quick"
    onsets = (
        OnsetRule("memorisation", "train/acc", "cross", ">=", 0.99),
        OnsetRule("generalisation_50", "test/acc", "cross", ">=", 0.5),
        OnsetRule("generalisation", "test/acc", "cross", ">=", 0.99),
        OnsetRule("test_loss_peak", "test/loss", "peak"),
    )
    presets = {
        "nanda2023": Preset(
            task=GrokkingConfig(),
            train=TrainConfig(
                steps=40_000,
                lr=1e-3,
                weight_decay=1.0,
                beta1=0.9,
                beta2=0.98,
                warmup_steps=10,
                eval_every=100,
                checkpoint_every=500,
            ),
            description="Nanda et al. 2023: p=113 a+b, 30% train, 1L d_model 128, "
            "AdamW lr 1e-3 wd 1.0, 40k full-batch steps",
        ),
        "quick": Preset(
            task=GrokkingConfig(p=59, train_frac=0.3),
            train=TrainConfig(
                steps=5_000,
                lr=3e-3,
                weight_decay=1.0,
                beta1=0.9,
                beta2=0.98,
                warmup_steps=10,
                eval_every=50,
                checkpoint_every=250,
            ),
            description="p=59 a+b, 30% train, Nanda's 1L model, AdamW lr 3e-3 wd 1.0, "
            "5k full-batch steps (~1-2 min on 2 cores)",
        ),
        "small": Preset(
            task=GrokkingConfig(p=47, train_frac=0.4, d_model=64, d_head=16, d_mlp=256),
            train=TrainConfig(
                steps=4_000,
                lr=1e-2,
                weight_decay=1.0,
                beta1=0.9,
                beta2=0.98,
                warmup_steps=10,
                eval_every=10,
                checkpoint_every=100,
            ),
            description="the lead-time benchmark's preset: p=47 a+b, 40% train, 1L d_model 64 "
            "(4 heads x 16, d_mlp 256), AdamW lr 1e-2 wd 1.0, 4k steps, metrics every 10 "
            "steps (~1 min on one core); memorises by step 50, generalises near step 1,100",
        ),
    }

    def build(self, cfg: GrokkingConfig, train: TrainConfig) -> GrokkingTask:
        return GrokkingTask(cfg, train)

    def checkpoint_measures(
        self,
        cfg: GrokkingConfig,
        train: TrainConfig,
        checkpoints: Iterator[tuple[int, dict[str, Tensor]]],
        final: dict[str, Tensor],
    ) -> Findings:
        """Key frequencies of the final model; restricted and excluded loss per checkpoint.

        Restricted/excluded loss are defined for ``add`` (Nanda et al. 2023, §5.1); for
        other operations only the key frequencies are reported.
        """
        task = GrokkingTask(cfg, train)
        task.model.load_state_dict(final)
        keys, counts = fourier.key_frequencies(neuron_table(task))
        extra: dict[str, Any] = {"key_frequencies": keys, "neurons_per_frequency": counts}
        rows: list[tuple[int, str, float]] = []
        if cfg.op != "add" or not keys:
            return Findings(rows, extra)
        train_mask = task.train_mask.reshape(cfg.p, cfg.p)
        for step, state in checkpoints:
            task.model.load_state_dict(state)
            table = logit_table(task)
            rows.append((step, "progress/restricted_loss", fourier.restricted_loss(table, keys)))
            rows.append(
                (step, "progress/excluded_loss", fourier.excluded_loss(table, keys, train_mask))
            )
        return Findings(rows, extra)


register(Grokking())
