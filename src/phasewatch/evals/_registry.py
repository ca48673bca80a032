"""inspect_ai entry point (``[project.entry-points.inspect_ai]``): importing this module
registers phasewatch's tasks, so ``inspect eval phasewatch/base64bench`` finds them."""

from phasewatch.evals.base64bench import (  # noqa: F401
    base64bench,
    base64bench_decode,
    base64bench_encode,
)
