"""Small reusable models with named hook points."""

from phasewatch.models.hooks import HookPoint, run_with_cache
from phasewatch.models.normed import NormedTransformer, fast_logits
from phasewatch.models.transformer import Transformer, TransformerConfig

__all__ = [
    "HookPoint",
    "NormedTransformer",
    "Transformer",
    "TransformerConfig",
    "fast_logits",
    "run_with_cache",
]
