"""inspect_ai entry point (``[project.entry-points.inspect_ai]``): importing this module
registers phasewatch's tasks, so ``inspect eval phasewatch/base64bench`` and
``inspect eval phasewatch/alignment_faking`` find them."""

from phasewatch.evals.alignment_faking import alignment_faking  # noqa: F401
from phasewatch.evals.base64bench import (  # noqa: F401
    base64bench,
    base64bench_decode,
    base64bench_encode,
)
