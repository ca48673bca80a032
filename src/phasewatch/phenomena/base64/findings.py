"""Whole-run findings of a base64 ladder: every member's final per-sample scores, the member
table (sizes, parameter counts, final metrics), the largest-vs-smallest check and the
Hugging Face export of the largest member (Base64Bench 2025; Schaeffer et al. 2023)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from torch import Tensor

from phasewatch.config import TrainConfig
from phasewatch.phenomena.base import Findings
from phasewatch.phenomena.base64.config import Base64LadderConfig
from phasewatch.phenomena.base64.export import export_hf
from phasewatch.phenomena.base64.scores import METRICS, ladder_note, summarise
from phasewatch.phenomena.base64.task import Base64LadderTask, parameter_counts


def _member_table(task: Base64LadderTask) -> list[dict[str, Any]]:
    """One row per member: name, layers, d_model, heads, d_mlp and parameter counts."""
    rows = []
    for name, layers, width in task.cfg.members():
        member = task.model[name]
        row = {"member": name, "n_layers": layers, "d_model": width}
        row |= {"n_heads": member.cfg.n_heads, "d_mlp": member.cfg.d_mlp}
        rows.append(row | parameter_counts(member))
    return rows


def findings(cfg: Base64LadderConfig, train: TrainConfig, final: dict[str, Tensor]) -> Findings:
    """Final per-sample scores of every member, the member table (sizes, parameter
    counts, final metrics), the largest-vs-smallest check and the Hugging Face export
    of the largest member (``hf/``).

    Args:
        cfg, train: the run's configs.
        final: the final weights of every member (``<member>.<parameter>``).

    Returns:
        Tables ``ladder`` and ``final_samples``, events ``ladder`` and ``notes``, and the
        ``hf`` export; no metric rows.
    """
    task = Base64LadderTask(cfg, train)
    task.model.load_state_dict(final)
    members = _member_table(task)
    samples = []
    for row in members:
        df = task.member_samples(row["member"])
        row |= summarise(df)
        samples.append(df.assign(member=row["member"], params=row["params"]))
    final_samples = pd.concat(samples, ignore_index=True)
    by_size = sorted(members, key=lambda r: r["params"])
    small, large = by_size[0], by_size[-1]
    beats = {m: bool(large[m] > small[m]) for m in METRICS}
    events = {
        "ladder": {
            "members": [r["member"] for r in members],
            "smallest": small["member"],
            "largest": large["member"],
            "largest_beats_smallest": beats,
            "all_metrics_better": all(beats.values()),
            "hf_export": {"folder": "hf", "member": large["member"]},
        },
        "notes": [ladder_note(small, large, beats)],
    }
    largest = task.model[large["member"]]
    return Findings(
        events=events,
        tables={"ladder": pd.DataFrame(members), "final_samples": final_samples},
        exports={"hf": lambda folder: export_hf(largest, folder)},
    )
