"""Base64Bench samples: seeded texts of the 34 types, each used for an encode and a decode
sample, as records and JSONL (no inspect_ai needed).

A record is ``{"id", "type", "direction", "length", "text"}``: ``text`` is the original
text (the target of both directions), ``length`` its length in code points. Records are
ordered text index first, then type, then direction, so the first ``34 · 2 · k`` records
hold ``k`` texts of every type in both directions and ``--limit`` takes a balanced subset.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from phasewatch.config import require
from phasewatch.errors import ConfigError
from phasewatch.evals.base64spec import DIRECTIONS
from phasewatch.evals.texttypes import TYPES, generate


def parse_types(types: str | Iterable[str] | None) -> list[str]:
    """Type names from a comma-separated string or a list (None: all 34, in order).

    Raises:
        ConfigError: on an unknown type or an empty list.
    """
    if types is None:
        return list(TYPES)
    names = [t.strip() for t in types.split(",")] if isinstance(types, str) else list(types)
    names = [n for n in names if n]
    unknown = [n for n in names if n not in TYPES]
    require(bool(names) and not unknown, "types", ", ".join(TYPES), types)
    return names


def parse_directions(direction: str) -> tuple[str, ...]:
    """``both`` → (encode, decode); ``encode`` or ``decode`` → that one.

    Raises:
        ConfigError: on any other value.
    """
    require(direction in ("both", *DIRECTIONS), "direction", "both, encode, decode", direction)
    return DIRECTIONS if direction == "both" else (direction,)


def records(
    n_per_type: int = 50,
    seed: int = 0,
    types: str | Iterable[str] | None = None,
    direction: str = "both",
) -> list[dict[str, Any]]:
    """The benchmark's samples (default: 34 types × 50 texts × 2 directions = 3,400).

    Raises:
        ConfigError: on ``n_per_type < 1``, a negative seed, an unknown type or direction.
    """
    require(n_per_type >= 1, "n_per_type", "an integer >= 1", n_per_type)
    require(seed >= 0, "seed", "an integer >= 0", seed)
    names, dirs = parse_types(types), parse_directions(direction)
    texts = {name: generate(name, n_per_type, seed) for name in names}
    return [
        {
            "id": f"{name}-{i:03d}-{d}",
            "type": name,
            "direction": d,
            "length": len(texts[name][i]),
            "text": texts[name][i],
        }
        for i in range(n_per_type)
        for name in names
        for d in dirs
    ]


def write_jsonl(path: str | Path, recs: list[dict[str, Any]]) -> Path:
    """Write records one JSON object per line (UTF-8, non-ASCII kept as is)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), "utf-8")
    return path


def read_jsonl(path: str | Path, direction: str = "both") -> list[dict[str, Any]]:
    """Records from a JSONL file: phasewatch's own, or the original benchmark's
    ``{"text", "type"}`` lines, which become one record per direction.

    Raises:
        ConfigError: if the file is missing, not JSONL, or a line has no ``text``.
    """
    dirs = parse_directions(direction)
    try:
        lines = Path(path).read_text("utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"dataset={str(path)!r} is invalid ({e}); allowed: a JSONL file"
        ) from None
    out = []
    for n, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise ConfigError(f"dataset={str(path)!r} line {n + 1} has no text; allowed: JSONL")
        for d in [row["direction"]] if "direction" in row else dirs:
            if d not in dirs:
                continue
            base = row.get("id") or f"{row.get('type', 'text')}-{n:04d}"
            rid = base if "direction" in row else f"{base}-{d}"
            out.append(
                {
                    "id": rid,
                    "type": row.get("type", "unknown"),
                    "direction": d,
                    "length": len(row["text"]),
                    "text": row["text"],
                }
            )
    return out
