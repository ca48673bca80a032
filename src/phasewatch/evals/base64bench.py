"""Base64Bench as inspect_ai tasks: ``base64bench``, ``base64bench_encode``, ``base64bench_decode``.

Base64Bench (2025; LessWrong, inspect_ai code under MIT) measures whether a model can
encode text to base64, and decode it back, with no tools and no reasoning: 34 text types
× 50 texts, each used for an encode and a decode sample (3,400 samples). The prompts and
the score are the original's (:mod:`phasewatch.evals.base64spec`): normalised Levenshtein
similarity of stripped strings, encode answers decoded strictly as base64 then UTF-8
(undecodable → 0). Each sample's score value is its similarity; the metadata holds its
``status`` (``ok``, ``empty``, ``refusal``, ``invalid_base64``, ``not_utf8``) and whether
it ``passed`` at the task's threshold. Empty answers and refusals are scored 0 and
counted as failures, never dropped (the original retried them as service errors).

Differences from the original, by design: texts are generated from a seed (``seed``,
``n_per_type``), so a run is reproducible; ``types`` restricts the text types; the
``dataset`` argument reads a JSONL file instead (the original's ``{"text", "type"}`` lines
work).

Run with ``inspect eval phasewatch/base64bench --model <provider/model>`` (the package
registers the tasks with inspect_ai through an entry point) or ``phasewatch eval
base64bench``.
"""

from __future__ import annotations

from typing import Any

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.scorer import (
    Metric,
    SampleScore,
    Score,
    Scorer,
    Target,
    mean,
    metric,
    scorer,
    stderr,
)
from inspect_ai.solver import TaskState, generate

from phasewatch.config import require
from phasewatch.evals.base64spec import prompt, score_answer
from phasewatch.evals.dataset import read_jsonl, records

HEADLINE_THRESHOLDS = (1.0, 0.95)


def to_samples(recs: list[dict[str, Any]]) -> list[Sample]:
    """inspect ``Sample`` objects: the prompt as input, the original text as target."""
    return [
        Sample(
            id=r["id"],
            input=prompt(r["direction"], r["text"]),
            target=r["text"],
            metadata={"type": r["type"], "direction": r["direction"], "length": r["length"]},
        )
        for r in recs
    ]


@metric
def accuracy_at(thresholds: list[float]) -> Metric:
    """Fraction of samples that pass at each threshold: a valid answer (status ``ok``) with
    similarity >= threshold. Returns ``{"acc@<t>": fraction}``."""

    def compute(scores: list[SampleScore]) -> dict[str, float]:
        """``{"acc@<t>": fraction}`` over ``scores`` (0 for no scores)."""
        n = max(len(scores), 1)
        out = {}
        for t in thresholds:
            ok = sum(
                (s.score.metadata or {}).get("status") == "ok" and s.score.as_float() >= t
                for s in scores
            )
            out[f"acc@{t:g}"] = ok / n
        return out

    return compute


@metric
def failed() -> Metric:
    """Number of samples whose answer failed before comparison (empty, refusal,
    undecodable): counted, never dropped."""

    def compute(scores: list[SampleScore]) -> int:
        """The number of ``scores`` whose metadata status is not ``ok``."""
        return sum((s.score.metadata or {}).get("status") != "ok" for s in scores)

    return compute


@scorer(metrics=[mean(), stderr()])
def base64_similarity(threshold: float = 0.95) -> Scorer:
    """Normalised Levenshtein similarity of the answer to the original text (Base64Bench).

    Args:
        threshold: similarity in [0, 1] at which a sample ``passed`` (metadata).
    """

    async def score(state: TaskState, target: Target) -> Score:
        """The similarity of the model's completion to ``target`` (status, passed and the
        compared strings in the metadata)."""
        answer = state.output.completion
        direction = state.metadata["direction"]
        s = score_answer(answer, target.text, direction)
        return Score(
            value=s.similarity,
            answer=answer.strip(),
            explanation=f"{direction}: {s.status}, similarity {s.similarity:.4f}",
            metadata={
                "status": s.status,
                "passed": s.passed(threshold),
                "threshold": threshold,
                "compared": s.compared,
            },
        )

    return score


def _task(
    direction: str,
    n_per_type: int,
    seed: int,
    types: str | list[str] | None,
    threshold: float,
    dataset: str | None,
) -> Task:
    require(0.0 <= threshold <= 1.0, "threshold", "a float in [0, 1]", threshold)
    if dataset is not None:
        recs = read_jsonl(dataset, direction)
    else:
        recs = records(n_per_type, seed, types, direction)
    thresholds = sorted({*HEADLINE_THRESHOLDS, threshold}, reverse=True)
    return Task(
        dataset=MemoryDataset(to_samples(recs), name=f"base64bench-{direction}"),
        solver=generate(),
        scorer=base64_similarity(threshold),
        metrics=[mean(), stderr(), accuracy_at(thresholds), failed()],
        metadata={"n_per_type": n_per_type, "seed": seed, "direction": direction},
    )


@task
def base64bench(
    n_per_type: int = 50,
    seed: int = 0,
    types: str | list[str] | None = None,
    threshold: float = 0.95,
    dataset: str | None = None,
) -> Task:
    """Base64Bench, encode and decode samples of every text.

    Args:
        n_per_type: texts per type (the original: 50).
        seed: seed of the text generator.
        types: comma-separated text types (default: all 34).
        threshold: similarity at which a sample passes (the original's default: 0.95).
        dataset: a JSONL file to read instead of generating texts.
    """
    return _task("both", n_per_type, seed, types, threshold, dataset)


@task
def base64bench_encode(
    n_per_type: int = 50,
    seed: int = 0,
    types: str | list[str] | None = None,
    threshold: float = 0.95,
    dataset: str | None = None,
) -> Task:
    """Base64Bench, encode samples only (arguments as :func:`base64bench`)."""
    return _task("encode", n_per_type, seed, types, threshold, dataset)


@task
def base64bench_decode(
    n_per_type: int = 50,
    seed: int = 0,
    types: str | list[str] | None = None,
    threshold: float = 0.95,
    dataset: str | None = None,
) -> Task:
    """Base64Bench, decode samples only (arguments as :func:`base64bench`)."""
    return _task("decode", n_per_type, seed, types, threshold, dataset)
