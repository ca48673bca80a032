"""Which checkpoints ``measure`` selects (:func:`select_steps`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from phasewatch.config import require_choice


def select_steps(
    steps: Sequence[int], every: int, only: Iterable[int] | None = None, until: int | None = None
) -> list[int]:
    """Every ``every``-th checkpoint from the first, plus the last (of those at steps <=
    ``until`` when given); or exactly ``only``.

    Raises:
        ConfigError: if a step in ``only`` has no checkpoint.
    """
    if only is not None:
        only = list(only)
        for s in only:
            require_choice("step", s, steps)
        return sorted(set(only))
    steps = [s for s in steps if until is None or s <= until]
    chosen = list(steps[::every])
    if steps and steps[-1] not in chosen:
        chosen.append(steps[-1])
    return chosen
