"""One seed of a base64 ladder: the members (pre-LayerNorm transformers of increasing
size, trained on the same batches), their data streams, the summed loss and the
measures of every eval step."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from phasewatch.config import TrainConfig
from phasewatch.errors import MissingDependency
from phasewatch.models import NormedTransformer, fast_logits
from phasewatch.phenomena.base64 import data as D
from phasewatch.phenomena.base64.config import Base64LadderConfig
from phasewatch.phenomena.base64.scores import member_samples, summarise
from phasewatch.phenomena.streams import generator

_TRAIN, _EVAL, _INIT = range(3)  # random streams: training batches, eval set, initialisation
_EMBEDDINGS = ("embed", "pos_embed", "unembed")


def require_evals() -> None:
    """Raise :class:`MissingDependency` unless the ``evals`` extra is installed."""
    missing = [m for m in ("Levenshtein", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependency(
            f"base64-ladder needs {', '.join(missing)}; install: pip install 'phasewatch[evals]'"
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


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Total parameters and those outside the embedding, positional embedding and
    unembedding (Kaplan et al. 2020's non-embedding count)."""
    total = sum(p.numel() for p in model.parameters())
    emb = sum(p.numel() for n, p in model.named_parameters() if n.split(".")[0] in _EMBEDDINGS)
    return {"params": total, "params_non_embedding": total - emb}


class Base64LadderTask:
    """One seed of a ladder: all members, the data streams and the per-eval measures.

    Args:
        cfg: the data and the ladder.
        train: the training loop's config (its ``seed`` and ``device`` are read).

    Raises:
        MissingDependency: without the ``evals`` extra (Levenshtein, transformers).
    """

    def __init__(self, cfg: Base64LadderConfig, train: TrainConfig) -> None:
        require_evals()
        self.cfg, self.seed = cfg, train.seed
        self.device = torch.device(train.device)
        self.model = build_ladder(cfg, train.seed).to(self.device)
        rng = np.random.default_rng(np.random.SeedSequence([train.seed, _EVAL]))
        texts = D.sample_texts(rng, cfg.eval_size, cfg.max_len, cfg.word_frac)
        self.eval_batch = D.make_batch(texts, D.alternate(len(texts)), cfg.n_ctx).to(self.device)

    def train_batch(self, step: int) -> D.Batch:
        """The training batch of update ``step`` (fresh texts, half per direction), a
        function of (seed, step) only."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _TRAIN, step]))
        texts = D.sample_texts(rng, self.cfg.batch_size, self.cfg.max_len, self.cfg.word_frac)
        return D.make_batch(texts, D.alternate(len(texts)), self.cfg.n_ctx).to(self.device)

    def train_loss(self, step: int) -> Float[Tensor, ""]:
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
        """Per held-out sample of member ``name``: see :func:`~.scores.member_samples`."""
        return member_samples(self.model[name], self.eval_batch)

    def evaluate(self) -> dict[str, float]:
        """Every member's metrics on the held-out set (``<metric>/<member>``, see the package
        docstring) and the best member's ``exact/max`` and ``char_acc/max``."""
        out: dict[str, float] = {}
        for name in self.model:
            out |= {f"{k}/{name}": v for k, v in summarise(self.member_samples(name)).items()}
        for metric in ("exact", "char_acc"):
            out[f"{metric}/max"] = max(out[f"{metric}/{n}"] for n in self.model)
        return out
