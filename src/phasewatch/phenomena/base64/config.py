"""The base64 ladder's config: the data and the members' shapes."""

from __future__ import annotations

from dataclasses import dataclass

from phasewatch.config import require
from phasewatch.models import TransformerConfig
from phasewatch.phenomena.base64 import data as D


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

    Raises:
        ConfigError: on a field outside its range or a malformed ladder.
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
        """One member's shape: byte-level vocabulary, heads of ``d_head``, MLP
        ``mlp_ratio · d_model`` wide, GELU."""
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
