"""The training loop, optimiser and checkpoints.

``train`` and ``make_optimizer`` (:mod:`.trainer`) are imported on first use, so that
light modules of this package (:mod:`.progress`) load without torch.
"""

__all__ = ["make_optimizer", "train"]


def __getattr__(name: str):
    """``from phasewatch.training import train`` without importing torch up front."""
    if name in __all__:
        from phasewatch.training import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'phasewatch.training' has no attribute {name!r}")
