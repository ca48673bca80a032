"""``phasewatch eval base64bench`` and ``phasewatch mirage``: bad input exits 2 with one
line naming the problem (inspect's own error for an unknown provider); nothing is written."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from phasewatch.cli.app import app
from phasewatch.cli.eval import parse_model_args
from phasewatch.errors import ConfigError

pytest.importorskip("inspect_ai")


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--limit", "0"], "limit=0 is invalid; allowed: an integer >= 1"),
        (["--limit", "-3"], "limit=-3 is invalid"),
        (["--thresholds", "0.5,1.2"], "thresholds='0.5,1.2' is invalid; allowed: comma-separated"),
        (["--thresholds", "-0.1"], "thresholds='-0.1' is invalid"),
        (["--threshold", "2"], "threshold=2.0 is invalid; allowed: a float in [0, 1]"),
        (["-M", "model_path"], "-M='model_path' is invalid; allowed: key=value"),
        (["--direction", "up"], "direction='up' is invalid; allowed: both, encode, decode"),
        (["--types", "uuid,nope"], "types='uuid,nope' is invalid"),
        (["--model", "nope/x"], "model='nope/x' is invalid: Model API nope of model 'nope/x'"),
        (["--model", "hf/local"], "model=hf/local needs -M model_path="),
        (["--max-connections", "0"], "max_connections=0 is invalid; allowed: an integer >= 1"),
    ],
)
def test_bad_eval_input_exits_2_with_one_line(tmp_path, monkeypatch, args, needle):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "runs"
    base = ["eval", "base64bench", "--out", str(out), "--no-progress"]
    if "--model" not in args:
        base += ["--model", "mockllm/model"]
    r = CliRunner().invoke(app, base + args)
    assert r.exit_code == 2, r.output
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: ") and needle in line
    assert not out.exists()


def test_model_args_parse_values():
    got = parse_model_args(["model_path=runs/x/hf", "do_sample=false", "batch_size=4", "t=0.5"])
    assert got == {"model_path": "runs/x/hf", "do_sample": False, "batch_size": 4, "t": 0.5}
    with pytest.raises(ConfigError, match="-M="):
        parse_model_args(["=3"])


def test_mirage_on_a_folder_that_is_not_a_ladder_exits_2(tmp_path):
    r = CliRunner().invoke(app, ["mirage", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "no such run directory" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_mockllm_smoke_test_needs_no_network(tmp_path, monkeypatch):
    """``--model mockllm/model`` must not need tiktoken's encoding file (a download)."""
    import tiktoken

    def forbidden(*args, **kwargs):
        raise AssertionError("tiktoken was used (its encoding file is downloaded)")

    monkeypatch.setattr(tiktoken, "get_encoding", forbidden)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "runs"
    args = ["eval", "base64bench", "--model", "mockllm/model", "--limit", "4", "--out", str(out),
            "--no-progress"]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "mockllm/model: 4 samples" in r.output
    assert not (tmp_path / "tiktoken").exists()


def test_max_connections_reaches_inspect_and_is_recorded(tmp_path, monkeypatch):
    """``--max-connections`` (the batch size of hf/local) is passed to inspect's eval: its
    log's config holds it, and eval.json records it with ``--max-tokens``."""
    import json

    from inspect_ai.log import read_eval_log

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "runs"
    args = ["eval", "base64bench", "--model", "mockllm/model", "--limit", "3",
            "--max-connections", "2", "--max-tokens", "7", "--out", str(out),
            "--no-progress"]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    (folder,) = out.iterdir()
    info = json.loads((folder / "eval.json").read_text())
    assert info["max_connections"] == 2 and info["max_tokens"] == 7
    log = read_eval_log(info["log"])
    assert log.plan.config.max_connections == 2 and log.plan.config.max_tokens == 7
