"""The induction-heads run's config: data and model shape (Olsson et al. 2022, §"Models")."""

from __future__ import annotations

from dataclasses import dataclass

from phasewatch.config import require, require_choice
from phasewatch.models import TransformerConfig

SOURCES = ("random", "markov")
INDUCTION_THRESHOLD = 0.5  # prefix-matching score above which a head is an induction head
PREVIOUS_TOKEN_THRESHOLD = 0.5  # previous-token score above which a head is a previous-token head


@dataclass(frozen=True)
class InductionConfig:
    """Data and model of an induction-heads run.

    Attributes:
        source: text between the repeats: random (uniform i.i.d. tokens) or markov (a
            seeded bigram chain).
        vocab: vocabulary size (tokens), >= span_len.
        n_ctx: context length (tokens), >= span_len * repeats.
        span_len: length (tokens) of the random span that repeats in each sequence.
        repeats: occurrences of the span per sequence (>= 1; 1 = written once, nothing to
            copy: the null run of the forecasting benchmark).
        markov_concentration: Dirichlet concentration of the bigram chain's rows (markov
            source; smaller = more predictable text).
        batch_size: sequences per training step (fresh every step).
        eval_batch: sequences in each fixed held-out evaluation set.
        n_layers: attention-only layers, 1-4 (1 = the control without induction heads).
        d_model: residual stream width.
        n_heads: attention heads per layer.
        d_head: width of each head.
        layernorm: pre-LayerNorm without gain/bias before each layer and the unembedding.
    """

    source: str = "random"
    vocab: int = 128
    n_ctx: int = 85
    span_len: int = 16
    repeats: int = 2
    markov_concentration: float = 0.1
    batch_size: int = 128
    eval_batch: int = 128
    n_layers: int = 2
    d_model: int = 48
    n_heads: int = 4
    d_head: int = 12
    layernorm: bool = True

    def __post_init__(self) -> None:
        require_choice("source", self.source, SOURCES)
        require(self.span_len >= 1, "span_len", "an integer >= 1", self.span_len)
        require(self.repeats >= 1, "repeats", "an integer >= 1", self.repeats)
        require(
            self.vocab >= max(2, self.span_len),
            "vocab",
            f"an integer >= span_len ({self.span_len}) and >= 2",
            self.vocab,
        )
        need = max(4, self.span_len * self.repeats)
        require(
            self.n_ctx >= need,
            "n_ctx",
            f"an integer >= span_len * repeats ({self.span_len} * {self.repeats}) and >= 4",
            self.n_ctx,
        )
        require(1 <= self.n_layers <= 4, "n_layers", "an integer in 1..4", self.n_layers)
        mc = self.markov_concentration
        require(mc > 0, "markov_concentration", "a float > 0", mc)
        for name in ("batch_size", "eval_batch", "d_model", "n_heads", "d_head"):
            require(getattr(self, name) >= 1, name, "an integer >= 1", getattr(self, name))

    def transformer(self) -> TransformerConfig:
        """The attention-only shape (no MLP); :class:`NormedTransformer` adds LayerNorm."""
        return TransformerConfig(
            d_vocab=self.vocab,
            d_vocab_out=self.vocab,
            n_ctx=self.n_ctx,
            d_model=self.d_model,
            n_heads=self.n_heads,
            d_head=self.d_head,
            d_mlp=0,
            n_layers=self.n_layers,
        )
