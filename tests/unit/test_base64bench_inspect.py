"""Base64Bench through inspect_ai end to end with the ``mockllm`` provider: scores,
failures kept and counted, tables and files, and the entry point ``phasewatch/base64bench``."""

from __future__ import annotations

import base64
import json

import pandas as pd
import pytest

pytest.importorskip("inspect_ai")

from inspect_ai import eval as inspect_eval  # noqa: E402
from inspect_ai.model import ModelOutput, ModelUsage, get_model  # noqa: E402

from phasewatch.api import eval_base64bench  # noqa: E402
from phasewatch.evals.base64spec import PROMPT_MARKERS  # noqa: E402
from phasewatch.evals.runner import run_base64bench  # noqa: E402
from phasewatch.evals.texttypes import generate  # noqa: E402

# The first text (seed 0) of the types whose answers are spoiled below.
SPOILED = {
    name: generate(name, 1, seed=0)[0] for name in ("uuid", "api_key", "hex_32", "common_word")
}


def crafted(messages, tools, tool_choice, config) -> ModelOutput:
    """Right answers, except: uuid decode → empty; api_key → refusal; hex_32 encode →
    invalid base64; common_word decode → last character dropped."""
    text = messages[-1].text
    direction = next(d for d, (start, _) in PROMPT_MARKERS.items() if start in text)
    start, end = PROMPT_MARKERS[direction]
    inner = text.split(start, 1)[1].rsplit(end, 1)[0]
    if direction == "encode":
        original, answer = inner, base64.b64encode(inner.encode()).decode()
    else:
        original = answer = base64.b64decode(inner).decode()
    spoil = {(SPOILED[k], d): v for (k, d), v in _SPOILS.items()}.get((original, direction))
    answer = spoil(answer) if spoil else answer
    out = ModelOutput.from_content(model="mockllm", content=answer)
    out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)  # no tokenizer
    return out


_SPOILS = {
    ("uuid", "decode"): lambda a: "",
    ("api_key", "encode"): lambda a: "I'm sorry, I can't help with that.",
    ("api_key", "decode"): lambda a: "I'm sorry, I can't help with that.",
    ("hex_32", "encode"): lambda a: a.rstrip("=") + "*",
    ("common_word", "decode"): lambda a: a[:-1],
}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    model = get_model("mockllm/model", custom_outputs=crafted)
    return eval_base64bench(model, n_per_type=1, out=tmp_path_factory.mktemp("ev"))


def test_every_sample_is_scored_and_failures_are_counted(result):
    s = result.samples.set_index(["type", "direction"])
    assert len(s) == 68  # 34 types x 1 text x 2 directions, none dropped
    assert s.loc[("uuid", "decode"), "status"] == "empty"
    assert s.loc[("api_key", "encode"), "status"] == "refusal"
    assert s.loc[("api_key", "decode"), "status"] == "refusal"
    assert s.loc[("hex_32", "encode"), "status"] == "invalid_base64"
    word = s.loc[("common_word", "decode")]
    n = len(word["answer"]) + 1
    assert word["status"] == "ok" and word["similarity"] == pytest.approx(1 - 1 / n)
    ok = s.drop(index=[("uuid", "decode"), ("api_key", "encode"), ("api_key", "decode")])
    ok = ok.drop(index=[("hex_32", "encode"), ("common_word", "decode")])
    assert (ok["similarity"] == 1.0).all() and (ok["status"] == "ok").all()
    assert result.info["status_counts"] == {"empty": 1, "invalid_base64": 1, "ok": 64, "refusal": 2}
    assert result.info["accuracy"]["1"] == pytest.approx(63 / 68)


def test_tables_files_and_inspect_metrics_agree(result):
    p = result.path
    for name in ("eval.json", "dataset.jsonl", "summary.md", "report.html"):
        assert (p / name).stat().st_size > 0, name
    for name in ("samples", "sweep", "per_type"):
        assert pd.read_csv(p / f"{name}.csv").shape == pd.read_parquet(p / f"{name}.parquet").shape
    assert (p / "figures" / "sweep.png").stat().st_size > 5_000
    assert len((p / "dataset.jsonl").read_text().splitlines()) == 68
    sweep = result.sweep.set_index(["direction", "threshold"])["accuracy"]
    assert sweep[("all", 1.0)] == pytest.approx(63 / 68)
    assert sweep[("all", 0.0)] == pytest.approx(64 / 68)  # the 4 failures fail at 0 too
    from inspect_ai.log import read_eval_log

    log = read_eval_log(json.loads((p / "eval.json").read_text())["log"])
    metrics = {k: v.value for k, v in log.results.scores[0].metrics.items()}
    assert metrics["acc@1"] == pytest.approx(63 / 68) and metrics["failed"] == 4
    assert "Accuracy at threshold 1.0: **92.6%**" in (p / "summary.md").read_text()


def test_limit_runs_the_first_samples_balanced_over_types(tmp_path):
    model = get_model("mockllm/model", custom_outputs=crafted)
    r = run_base64bench(model, limit=10, direction="decode", out=tmp_path, thresholds=[1.0])
    assert len(r.samples) == 10 and set(r.samples["direction"]) == {"decode"}
    # the evals box tabulates; figures and summary are the report's (api.eval_base64bench)
    assert (r.path / "eval.json").exists() and not (r.path / "summary.md").exists()
    assert r.samples["type"].nunique() == 10
    assert list(r.sweep["threshold"].unique()) == [1.0]


def test_inspect_finds_the_task_by_its_package_name(tmp_path):
    model = get_model("mockllm/model", custom_outputs=crafted)
    (log,) = inspect_eval(
        "phasewatch/base64bench_encode",
        model=model,
        task_args={"n_per_type": 1, "types": "uuid,emoji"},
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success" and log.eval.task == "phasewatch/base64bench_encode"
    assert [s.scores["base64_similarity"].value for s in log.samples] == [1.0, 1.0]
