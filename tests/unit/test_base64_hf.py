"""Hugging Face export of a phasewatch-trained ladder member, loaded for real (no
downloads): GPT-2 logits equal phasewatch's, the byte tokenizer and chat template map
Base64Bench prompts to the training layout, and inspect's ``hf/local`` provider runs the
task with the same greedy answers as phasewatch's own decoder."""

from __future__ import annotations

import os

import pytest
import torch

pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from phasewatch import api  # noqa: E402
from phasewatch.evals.base64spec import prompt  # noqa: E402
from phasewatch.models import fast_logits  # noqa: E402
from phasewatch.phenomena.base64 import Base64LadderConfig  # noqa: E402
from phasewatch.phenomena.base64 import data as D  # noqa: E402
from phasewatch.phenomena.base64.export import HF_POSITIONS  # noqa: E402
from phasewatch.phenomena.base64.scores import greedy_answers  # noqa: E402
from phasewatch.phenomena.base64.task import build_ladder  # noqa: E402

TRAIN = {
    "ladder": "1x16,1x32",
    "batch_size": 32,
    "eval_size": 8,
    "steps": 40,
    "eval_every": 40,
    "checkpoint_every": 40,
    "threads": 1,
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A ladder trained for 40 steps (texts up to 12 bytes) and its exported largest member."""
    rd = api.run(
        "base64-ladder", overrides=TRAIN, out=tmp_path_factory.mktemp("hf"), progress=False,
        report=False,
    )  # fmt: skip
    cfg = Base64LadderConfig(**rd.config()["task"])
    ladder = build_ladder(cfg, seed=0)
    ladder.load_state_dict(rd.load_checkpoint(40))
    return rd, cfg, ladder["L1d32"].eval()


def test_exported_gpt2_computes_the_same_logits(trained):
    rd, cfg, model = trained
    hf = AutoModelForCausalLM.from_pretrained(rd.path / "hf").eval()
    assert type(hf).__name__ == "GPT2LMHeadModel" and hf.config.n_positions == HF_POSITIONS
    batch = D.make_batch(["hello", "a b c", "~!x"], ["encode", "decode", "encode"], cfg.n_ctx)
    with torch.no_grad():
        ours, theirs = fast_logits(model, batch.tokens), hf(batch.tokens).logits
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()


def test_tokenizer_is_byte_level_with_the_ladder_special_ids(trained):
    tok = AutoTokenizer.from_pretrained(trained[0].path / "hf")
    text = "héllo 🚀\t<x>"
    ids = tok(text)["input_ids"]
    assert ids == list(text.encode("utf-8"))
    assert tok.decode(ids) == text
    assert [tok.pad_token_id, tok.bos_token_id, tok.eos_token_id] == [D.PAD, D.BOS, D.EOS]
    assert tok.convert_tokens_to_ids(["<|encode|>", "<|decode|>", "<|sep|>"]) == [
        D.ENC,
        D.DEC,
        D.SEP,
    ]


@pytest.mark.parametrize("direction", ["encode", "decode"])
def test_chat_template_maps_the_benchmark_prompt_to_the_training_layout(trained, direction):
    tok = AutoTokenizer.from_pretrained(trained[0].path / "hf")
    text = "Base64:\n\nHi 🚀"  # contains a marker: only the outer ones delimit the text
    chat = tok.apply_chat_template(
        [{"role": "user", "content": prompt(direction, text)}],
        tokenize=False,
        add_generation_prompt=True,
    )
    want = D.make_batch([text], [direction], 64)
    n = int(want.sep[0]) + 1
    assert tok(chat)["input_ids"] == want.tokens[0, :n].tolist()


def test_inspect_hf_local_gives_phasewatch_greedy_answers(trained, tmp_path):
    from phasewatch.evals.dataset import records
    from phasewatch.evals.runner import run_base64bench

    rd, cfg, model = trained
    result = run_base64bench(
        "hf/local",
        model_args={"model_path": str(rd.path / "hf"), "do_sample": False, "device": "cpu"},
        n_per_type=2, types="common_word,single_char", max_tokens=6, out=tmp_path,
    )  # fmt: skip
    recs = records(n_per_type=2, types="common_word,single_char")
    assert len(result.samples) == len(recs) == 8
    batch = D.make_batch([r["text"] for r in recs], [r["direction"] for r in recs], cfg.n_ctx)
    ours = greedy_answers(model, batch, max_new=6)
    got = result.samples.set_index("id").loc[[r["id"] for r in recs], "answer"]
    assert list(got) == [a.strip() for a in ours]
    assert result.samples["status"].isin(["ok", "invalid_base64", "not_utf8", "empty"]).all()
