"""The base64 ladder: config validation, sequence layout, answer decoding, batched greedy
decoding against a one-sample reference, and a tiny run end to end through the API."""

from __future__ import annotations

import pytest
import torch

from phasewatch import api
from phasewatch.errors import ConfigError
from phasewatch.phenomena.base64 import Base64LadderConfig
from phasewatch.phenomena.base64 import data as D
from phasewatch.phenomena.base64.scores import greedy_answers
from phasewatch.phenomena.base64.task import build_ladder, parameter_counts

TINY = {
    "ladder": "1x16,1x32",
    "max_len": 6,
    "batch_size": 16,
    "eval_size": 8,
    "steps": 12,
    "eval_every": 6,
    "checkpoint_every": 6,
    "threads": 1,
}


@pytest.mark.parametrize(
    "ladder,needle",
    [
        ("1x16", "ladder='1x16' is invalid; allowed: at least two"),
        ("1x16,2xabc", "ladder='1x16,2xabc' is invalid"),
        ("1x16,1x24", "ladder='1x16,1x24' is invalid"),  # 24 is not a multiple of d_head 16
        ("1x16,1x16", "ladder='1x16,1x16' is invalid"),
    ],
)
def test_bad_ladders_name_the_field(ladder, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        Base64LadderConfig(ladder=ladder)


def test_members_context_and_parameter_counts():
    cfg = Base64LadderConfig()
    assert [m[0] for m in cfg.members()] == ["L1d16", "L1d32", "L2d48", "L2d64", "L2d128"]
    assert cfg.n_ctx == 4 + 12 + 16
    ladder = build_ladder(cfg, seed=0)
    small = parameter_counts(ladder["L1d16"])
    # attention 4·16² + MLP (16·64 + 64 + 64·16 + 16) = 1,024 + 2,128
    assert small["params_non_embedding"] == 3_152
    assert small["params"] == 3_152 + 2 * 262 * 16 + 32 * 16
    big = parameter_counts(ladder["L2d128"])
    assert big["params"] / small["params"] > 30
    assert big["params_non_embedding"] / small["params_non_embedding"] > 100


def test_sequence_layout_and_masks():
    b = D.make_batch(["Hi", "Hi"], ["encode", "decode"], n_ctx=12)
    enc = [D.BOS, D.ENC, ord("H"), ord("i"), D.SEP, *b"SGk=", D.EOS, D.PAD, D.PAD]
    dec = [D.BOS, D.DEC, *b"SGk=", D.SEP, ord("H"), ord("i"), D.EOS, D.PAD, D.PAD]
    assert b.tokens.tolist() == [enc, dec]
    assert b.sep.tolist() == [4, 6]
    assert b.target[0].nonzero().flatten().tolist() == [5, 6, 7, 8, 9]  # SGk= and <eos>
    assert b.chars[1].nonzero().flatten().tolist() == [7, 8]  # H i
    with pytest.raises(ValueError, match="n_ctx=8"):
        D.make_batch(["Hello"], ["encode"], n_ctx=8)


def test_decode_answer_stops_at_eos_and_skips_specials():
    assert D.decode_answer([*b"SGk=", D.EOS, *b"xx"]) == "SGk="
    assert D.decode_answer([D.SEP, *b"ab", D.PAD]) == "ab"
    assert D.decode_answer([0xF0, 0x9F, 0x9A, 0x80]) == "🚀"
    assert D.decode_answer([0xFF, ord("a")]) == "\ufffda"


def _reference_greedy(model, tokens: list[int], limit: int) -> list[int]:
    """One sample, one full forward pass per token: the definition of greedy decoding."""
    seq, out = list(tokens), []
    for _ in range(limit):
        nxt = int(model(torch.tensor([seq]))[0, -1].argmax())
        out.append(nxt)
        seq.append(nxt)
        if nxt == D.EOS:
            break
    return out


def test_batched_greedy_matches_one_sample_reference():
    cfg = Base64LadderConfig(ladder="1x16,1x32", max_len=6)
    model = build_ladder(cfg, seed=3)["L1d32"]
    texts, dirs = ["a", "hello!", "xyz", "Q"], ["encode", "decode", "decode", "encode"]
    batch = D.make_batch(texts, dirs, cfg.n_ctx)
    got = greedy_answers(model, batch, max_new=7)
    for i, text in enumerate(texts):
        prompt = batch.tokens[i, : int(batch.sep[i]) + 1].tolist()
        limit = min(7, cfg.n_ctx - 1 - int(batch.sep[i]))
        with torch.no_grad():
            ref = _reference_greedy(model, prompt, limit)
        assert got[i] == D.decode_answer(ref), text


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    pytest.importorskip("transformers")
    return api.run(
        "base64-ladder", overrides=TINY, out=tmp_path_factory.mktemp("lad"), progress=False
    )


def test_tiny_ladder_run_writes_metrics_tables_events_and_hf(tiny_run):
    rd = tiny_run
    assert rd.status()["status"] == "done" and rd.checkpoint_steps() == [0, 6, 12]
    keys = set(rd.metrics()["key"])
    for m in ("L1d16", "L1d32"):
        for k in ("exact", "acc95", "similarity", "char_acc", "logprob", "exact/encode"):
            assert f"{k}/{m}" in keys
    assert {"exact/max", "char_acc/max"} <= keys
    ladder = rd.table("ladder")
    assert list(ladder["member"]) == ["L1d16", "L1d32"]
    samples = rd.table("final_samples")
    assert len(samples) == 2 * 8 and set(samples["direction"]) == {"encode", "decode"}
    ev = rd.events()
    assert ev["ladder"]["largest"] == "L1d32" and set(ev["onsets"]) == {
        "exact_match_50",
        "char_acc_90",
    }
    assert ev["notes"][0].startswith("Largest member L1d32")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in (rd.path / "hf").iterdir()
    }
    html = (rd.path / "report.html").read_text()
    assert "<h2>Base64 scale ladder</h2>" in html and "Schaeffer-style check" in html


def test_final_metrics_are_those_of_the_last_eval_step(tiny_run):
    m = tiny_run.metrics()
    last = m[m["step"] == 12].set_index("key")["value"]
    ladder = tiny_run.table("ladder").set_index("member")
    for k in ("exact", "char_acc", "logprob"):
        assert ladder.loc["L1d32", k] == pytest.approx(last[f"{k}/L1d32"], abs=1e-6)


def test_mirage_command_writes_the_analysis(tiny_run):
    from typer.testing import CliRunner

    from phasewatch.cli.app import app

    r = CliRunner().invoke(app, ["mirage", str(tiny_run.path)])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("• Across model size:") and "Verdict:" in lines[0]
    assert lines[1].startswith("• Over training steps of L1d32:")
    assert lines[-1] == f"mirage: {tiny_run.path / 'mirage' / 'mirage.html'}"
    out = tiny_run.path / "mirage"
    for name in ("mirage.json", "by_size.csv", "jumps.csv", "toy.csv", "figures/mirage_size.png"):
        assert (out / name).stat().st_size > 0, name


def test_mirage_refuses_a_run_of_another_phenomenon(tmp_path):
    import json

    from phasewatch.errors import StoreError
    from phasewatch.report.sections.base64 import write_mirage
    from phasewatch.store import open_run

    cfg = {"phenomenon": "grokking", "task": {}, "train": {}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "status.json").write_text(json.dumps({"status": "done", "step": 1}))
    with pytest.raises(StoreError, match="not a finished base64-ladder run"):
        write_mirage(open_run(tmp_path))
