"""Base64 scale ladder: tiny transformers of increasing size learn base64 (emergence across scale).

Base64Bench (2025) finds that encoding and decoding base64 without tools appears only in
large language models; Schaeffer et al. (2023, "Are emergent abilities of large language
models a mirage?") argue that such jumps can come from all-or-nothing metrics. This
phenomenon trains a *ladder* of small decoder-only transformers (one run folder, all
members trained on the same batches) on base64 encode and decode of short strings and
measures each member, at every eval step, with Base64Bench's own scorer and with smooth
metrics, so that ``phasewatch mirage`` can compare them across size and training steps.

Data: texts of 1-``max_len`` bytes, a fraction ``word_frac`` made of common English words
(1-3, space-separated, cut to ``max_len``), the rest random visible ASCII. Each sequence is
``<bos> <encode|decode> source <sep> target <eos>`` over a byte-level vocabulary (ids
0-255 are bytes, then 6 special tokens), padded to ``n_ctx``; the loss is the
cross-entropy of the target bytes and ``<eos>``. Fresh batches every step, half encode
and half decode.

Metrics (per member ``<m>`` = ``L<layers>d<d_model>``, on a fixed held-out set of
``eval_size`` texts, half per direction):
    ``exact/<m>``: accuracy at threshold 1.0 of the Base64Bench scorer on the greedy answer.
    ``acc95/<m>``: accuracy at threshold 0.95. ``similarity/<m>``: mean similarity.
    ``char_acc/<m>``: per-character accuracy of the target under teacher forcing.
    ``logprob/<m>``: mean log-likelihood (nats per token) of the target bytes and <eos>.
    ``exact/<direction>/<m>``, ``char_acc/<direction>/<m>``: the same per direction;
    ``exact/max``, ``char_acc/max``: best member.

Preset ``ladder`` (default): five members 1×16, 1×32, 2×48, 2×64, 2×128 (layers × d_model;
heads of 16; MLP 4×; pre-LayerNorm; GELU): 12k to 466k parameters (39×; 3.2k to 394k
without embeddings, 125×), texts up to 12 bytes, batch 128, AdamW lr 3e-3, 1,500 steps.
Seed 0, final step (727 s of CPU on one thread, ~12 min on an idle core): exact match
0.008, 0.305, 0.625, 0.719, 0.930; per-character accuracy 0.345, 0.712, 0.912, 0.950, 0.991;
target log-likelihood -2.33 → -0.027 nats per token (the largest beats the smallest on
every metric). Answers are at most 16 characters, so one wrong character already puts
the similarity below 0.95: acc95 equals exact match here.
The largest member is exported in Hugging Face format to ``<run>/hf`` for inspect's
``hf/local`` provider (:mod:`phasewatch.models.hf`). Needs the ``evals`` extra
(Levenshtein for the scorer, transformers for the export).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from phasewatch.config import OnsetRule, TrainConfig, require
from phasewatch.models import TransformerConfig
from phasewatch.phenomena.base import Findings, Preset, register
from phasewatch.phenomena.base64 import data as D
from phasewatch.phenomena.induction import NormedTransformer, fast_logits, generator

_TRAIN, _EVAL, _INIT = range(3)
METRICS = ("exact", "acc95", "similarity", "char_acc", "logprob")


@dataclass(frozen=True)
class Base64LadderConfig:
    """Data and ladder of a base64 scale-ladder run.

    Attributes:
        ladder: members as comma-separated ``<layers>x<d_model>`` (e.g. ``1x16,2x128``),
            smallest first; at least 2, d_model a multiple of d_head.
        d_head: width of every attention head (heads per layer = d_model / d_head).
        mlp_ratio: MLP width as a multiple of d_model.
        max_len: longest text in bytes (the base64 of it is 4·ceil(max_len/3) characters).
        word_frac: fraction of texts made of common words (the rest: random visible ASCII).
        batch_size: sequences per training step (fresh every step, half per direction).
        eval_size: held-out texts evaluated at every eval step (half per direction).
    """

    ladder: str = "1x16,1x32,2x48,2x64,2x128"
    d_head: int = 16
    mlp_ratio: int = 4
    max_len: int = 12
    word_frac: float = 0.5
    batch_size: int = 128
    eval_size: int = 256

    def __post_init__(self) -> None:
        require(self.d_head >= 1, "d_head", "an integer >= 1", self.d_head)
        require(self.mlp_ratio >= 1, "mlp_ratio", "an integer >= 1", self.mlp_ratio)
        require(1 <= self.max_len <= 64, "max_len", "an integer in 1..64", self.max_len)
        require(0 <= self.word_frac <= 1, "word_frac", "a float in [0, 1]", self.word_frac)
        require(self.batch_size >= 2, "batch_size", "an integer >= 2", self.batch_size)
        require(self.eval_size >= 2, "eval_size", "an integer >= 2", self.eval_size)
        self.members()  # validates the ladder string

    def members(self) -> list[tuple[str, int, int]]:
        """``[(name, n_layers, d_model), ...]`` in ladder order (``L2d128`` = 2 × 128)."""
        allowed = (
            f"at least two comma-separated <layers>x<d_model> with d_model % {self.d_head} == 0"
        )
        out = []
        for part in self.ladder.split(","):
            try:
                layers, width = (int(x) for x in part.strip().lower().split("x"))
            except ValueError:
                require(False, "ladder", allowed, self.ladder)
            ok = 1 <= layers <= 8 and width >= self.d_head and width % self.d_head == 0
            require(ok, "ladder", allowed + ", 1-8 layers", self.ladder)
            out.append((f"L{layers}d{width}", layers, width))
        names = [n for n, _, _ in out]
        require(len(out) >= 2 and len(set(names)) == len(names), "ladder", allowed, self.ladder)
        return out

    @property
    def n_ctx(self) -> int:
        """Context length: <bos>, direction, source, <sep>, target, <eos>."""
        return 4 + self.max_len + D.b64_len(self.max_len)

    def transformer(self, n_layers: int, d_model: int) -> TransformerConfig:
        return TransformerConfig(
            d_vocab=D.VOCAB,
            d_vocab_out=D.VOCAB,
            n_ctx=self.n_ctx,
            d_model=d_model,
            n_heads=d_model // self.d_head,
            d_head=self.d_head,
            d_mlp=self.mlp_ratio * d_model,
            n_layers=n_layers,
            act="gelu",
        )


def build_ladder(cfg: Base64LadderConfig, seed: int) -> nn.ModuleDict:
    """The ladder's members (pre-LayerNorm transformers), each initialised from its own
    stream of ``seed``; parameter names ``<member>.blocks.0.attn.W_Q``."""
    members = nn.ModuleDict()
    for i, (name, layers, width) in enumerate(cfg.members()):
        g = generator(seed, _INIT, i)
        members[name] = NormedTransformer(
            cfg.transformer(layers, width), layernorm=True, generator=g
        )
    return members


_EMBEDDINGS = ("embed", "pos_embed", "unembed")


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Total parameters and those outside the embedding, positional embedding and
    unembedding (Kaplan et al. 2020's non-embedding count)."""
    total = sum(p.numel() for p in model.parameters())
    emb = sum(p.numel() for n, p in model.named_parameters() if n.split(".")[0] in _EMBEDDINGS)
    return {"params": total, "params_non_embedding": total - emb}


class Base64LadderTask:
    """One seed of a ladder: all members, the data streams and the per-eval measures."""

    def __init__(self, cfg: Base64LadderConfig, train: TrainConfig) -> None:
        D.require_evals()
        self.cfg, self.seed = cfg, train.seed
        self.device = torch.device(train.device)
        self.model = build_ladder(cfg, train.seed).to(self.device)
        rng = np.random.default_rng(np.random.SeedSequence([train.seed, _EVAL]))
        texts = D.sample_texts(rng, cfg.eval_size, cfg.max_len, cfg.word_frac)
        self.eval_batch = D.make_batch(texts, D.alternate(len(texts)), cfg.n_ctx).to(self.device)

    def train_batch(self, step: int) -> D.Batch:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _TRAIN, step]))
        texts = D.sample_texts(rng, self.cfg.batch_size, self.cfg.max_len, self.cfg.word_frac)
        return D.make_batch(texts, D.alternate(len(texts)), self.cfg.n_ctx).to(self.device)

    def train_loss(self, step: int) -> Tensor:
        """Sum over members of each member's mean target cross-entropy (nats): members share
        the batch but no parameters, so each gets exactly its own gradient."""
        batch = self.train_batch(step)
        mask, nxt = batch.target[:, 1:], batch.tokens[:, 1:]  # (B, T-1)
        losses = [
            F.cross_entropy(fast_logits(member, batch.tokens)[:, :-1][mask], nxt[mask])
            for member in self.model.values()
        ]
        return torch.stack(losses).sum()

    def member_samples(self, name: str) -> pd.DataFrame:
        """Per held-out sample of member ``name``: see :func:`~.data.member_samples`."""
        return D.member_samples(self.model[name], self.eval_batch)

    def evaluate(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name in self.model:
            out |= {f"{k}/{name}": v for k, v in D.summarise(self.member_samples(name)).items()}
        for metric in ("exact", "char_acc"):
            out[f"{metric}/max"] = max(out[f"{metric}/{n}"] for n in self.model)
        return out


def _member_table(task: Base64LadderTask) -> list[dict[str, Any]]:
    rows = []
    for name, layers, width in task.cfg.members():
        member = task.model[name]
        row = {"member": name, "n_layers": layers, "d_model": width}
        row |= {"n_heads": member.cfg.n_heads, "d_mlp": member.cfg.d_mlp}
        rows.append(row | parameter_counts(member))
    return rows


class Base64Ladder:
    """The base64 scale ladder (registered as ``base64-ladder``)."""

    name = "base64-ladder"
    config_cls = Base64LadderConfig
    default_preset = "ladder"
    onsets = (
        OnsetRule("exact_match_50", "exact/max", "cross", ">=", 0.5),
        OnsetRule("char_acc_90", "char_acc/max", "cross", ">=", 0.9),
    )
    presets = {
        "ladder": Preset(
            task=Base64LadderConfig(),
            train=TrainConfig(
                steps=1_500,
                lr=3e-3,
                weight_decay=0.01,
                beta1=0.9,
                beta2=0.98,
                warmup_steps=100,
                eval_every=100,
                checkpoint_every=500,
            ),
            description="5 members 1x16..2x128 (12k-466k params), texts <= 12 bytes, "
            "batch 128, AdamW lr 3e-3, 1.5k steps",
        ),
    }

    def build(self, cfg: Base64LadderConfig, train: TrainConfig) -> Base64LadderTask:
        return Base64LadderTask(cfg, train)

    def checkpoint_measures(
        self,
        cfg: Base64LadderConfig,
        train: TrainConfig,
        checkpoints: Iterator[tuple[int, dict[str, Tensor]]],
        final: dict[str, Tensor],
    ) -> Findings:
        """Final per-sample scores of every member, the member table (sizes, parameter
        counts, final metrics), the largest-vs-smallest check and the Hugging Face export
        of the largest member (``hf/``)."""
        task = Base64LadderTask(cfg, train)
        task.model.load_state_dict(final)
        members = _member_table(task)
        samples = []
        for row in members:
            df = task.member_samples(row["member"])
            row |= D.summarise(df)
            samples.append(df.assign(member=row["member"], params=row["params"]))
        final_samples = pd.concat(samples, ignore_index=True)
        by_size = sorted(members, key=lambda r: r["params"])
        small, large = by_size[0], by_size[-1]
        beats = {m: bool(large[m] > small[m]) for m in METRICS}
        events = {
            "ladder": {
                "members": [r["member"] for r in members],
                "smallest": small["member"],
                "largest": large["member"],
                "largest_beats_smallest": beats,
                "all_metrics_better": all(beats.values()),
                "hf_export": {"folder": "hf", "member": large["member"]},
            },
            "notes": [D.ladder_note(small, large, beats)],
        }
        largest = task.model[large["member"]]
        return Findings(
            events=events,
            tables={"ladder": pd.DataFrame(members), "final_samples": final_samples},
            exports={"hf": lambda folder: D.export_hf(largest, folder)},
        )


register(Base64Ladder())
