"""TransformerLens export (``phasewatch export --to transformer-lens``) and
``api.load_model``: same logits as phasewatch's model within 1e-5, the layout without the
extra, and bad input exiting 2 with one line."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import torch
from safetensors.torch import load_file
from tiny_configs import GROKKING
from typer.testing import CliRunner

from phasewatch import api
from phasewatch.cli.app import app
from phasewatch.models import HookPoint, NormedTransformer, Transformer, TransformerConfig
from phasewatch.models.tlens import (
    export_tl,
    load_hooked,
    max_logit_gap,
    sample_tokens,
    tl_config,
)

HAS_TL = importlib.util.find_spec("transformer_lens") is not None
needs_tl = pytest.mark.skipif(not HAS_TL, reason="transformer-lens not installed (phasewatch[tl])")
INDUCTION = {
    "vocab": 16,
    "n_ctx": 12,
    "span_len": 3,
    "d_model": 16,
    "n_heads": 2,
    "d_head": 8,
    "batch_size": 8,
    "eval_batch": 4,
    "steps": 10,
    "eval_every": 10,
    "checkpoint_every": 10,
    "threads": 1,
}


@pytest.fixture(scope="module")
def grok(tmp_path_factory):
    out = tmp_path_factory.mktemp("grok")
    return api.run(
        "grokking", "quick", GROKKING | {"threads": 1}, out=out, progress=False, report=False
    )


def cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(r) -> str:
    assert r.exit_code == 2, r.output
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


def test_layout_without_the_extra(grok, tmp_path):
    folder = api.export_transformer_lens(grok.path, step=20, out=tmp_path / "tl")[""]
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["normalization_type"] is None and cfg["act_fn"] == "relu"
    assert (cfg["n_ctx"], cfg["d_model"], cfg["n_heads"], cfg["d_head"]) == (3, 16, 2, 8)
    assert cfg["d_vocab"] == 18 and cfg["d_vocab_out"] == 17  # p + "=" in, p out
    sd = load_file(folder / "model.safetensors")
    ckpt = grok.load_checkpoint(20)
    for name, w in ckpt.items():  # every phasewatch parameter under its TransformerLens name
        torch.testing.assert_close(sd[name], w, rtol=0, atol=0)
    assert sd["blocks.0.attn.W_Q"].shape == (2, 16, 8)  # (n_heads, d_model, d_head)
    assert sd["blocks.0.attn.W_O"].shape == (2, 8, 16)
    for bias in ("attn.b_Q", "attn.b_K", "attn.b_V", "attn.b_O"):
        assert not sd[f"blocks.0.{bias}"].any()
    assert sd["unembed.b_U"].shape == (17,) and not sd["unembed.b_U"].any()


@needs_tl
def test_grokking_checkpoint_has_the_same_logits_in_hooked_transformer(grok, tmp_path):
    r = cli("export", grok.path, "--to", "transformer-lens", "--out", tmp_path / "tl", "--verify")
    assert r.exit_code == 0, r.output
    assert "max |logit difference|" in r.output
    model = api.load_model(grok.path)
    hooked = load_hooked(tmp_path / "tl")
    assert max_logit_gap(model, hooked, sample_tokens(model, 8)) <= 1e-5


@needs_tl
def test_induction_checkpoint_layernorm_attention_only(tmp_path):
    rd = api.run("induction", overrides=INDUCTION, out=tmp_path, progress=False, report=False)
    folder = api.export_transformer_lens(rd.path)[""]
    assert folder == rd.path / "transformer_lens" / "step_000010"
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["normalization_type"] == "LNPre" and cfg["attn_only"]
    model = api.load_model(rd.path)
    assert max_logit_gap(model, load_hooked(folder), sample_tokens(model)) <= 1e-5


@needs_tl
def test_ladder_member_layout_two_layers_gelu_mlp(tmp_path):
    cfg = TransformerConfig(
        d_vocab=11,
        d_vocab_out=11,
        n_ctx=6,
        d_model=16,
        n_heads=2,
        d_head=8,
        d_mlp=32,
        n_layers=2,
        act="gelu",
    )
    model = NormedTransformer(cfg, layernorm=True, generator=torch.Generator().manual_seed(0))
    assert tl_config(model)["normalization_type"] == "LNPre"
    hooked = load_hooked(export_tl(model, tmp_path / "m"))
    assert max_logit_gap(model, hooked, sample_tokens(model)) <= 1e-5


def test_load_model_has_hook_points_and_checkpoint_weights(grok):
    model = api.load_model(grok.path, step=10)
    assert isinstance(model, Transformer) and not model.training
    assert isinstance(model.blocks[0].attn.hook_pattern, HookPoint)
    torch.testing.assert_close(model.embed.W_E.detach(), grok.load_checkpoint(10)["embed.W_E"])
    last = api.load_model(grok.path)
    torch.testing.assert_close(last.unembed.W_U.detach(), grok.load_checkpoint(40)["unembed.W_U"])


def test_step_without_checkpoint_exits_2(grok, tmp_path):
    r = cli("export", grok.path, "--to", "transformer-lens", "--step", 7, "--out", tmp_path / "x")
    line = one_error_line(r)
    assert "--step 7: no checkpoint" in line and "allowed: 0, 10, 20, 30, 40" in line
    assert not (tmp_path / "x").exists()


def test_unknown_format_exits_2(grok):
    line = one_error_line(cli("export", grok.path, "--to", "onnx"))
    assert "allowed: transformer-lens" in line


def test_not_a_transformer_phenomenon_exits_2(tmp_path):
    over = {"steps": 10, "eval_every": 10, "checkpoint_every": 10, "threads": 1}
    rd = api.run("superposition", overrides=over, out=tmp_path, progress=False, report=False)
    line = one_error_line(cli("export", rd.path, "--to", "transformer-lens"))
    assert "'superposition' run" in line and "allowed: runs of a transformer phenomenon" in line
    assert not (rd.path / "transformer_lens").exists()


def test_missing_extra_exits_2_before_writing(grok, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformer_lens", None)  # find_spec → None
    r = cli("export", grok.path, "--to", "transformer-lens", "--out", tmp_path / "x", "--verify")
    assert "pip install 'phasewatch[tl]'" in one_error_line(r)
    assert not (tmp_path / "x").exists()


@needs_tl
def test_base64_ladder_exports_one_folder_per_member(tmp_path):
    pytest.importorskip("Levenshtein")  # the ladder needs the evals extra
    over = {
        "ladder": "1x16,1x32",
        "max_len": 6,
        "batch_size": 8,
        "eval_size": 4,
        "steps": 6,
        "eval_every": 6,
        "checkpoint_every": 6,
        "threads": 1,
    }
    rd = api.run("base64-ladder", overrides=over, out=tmp_path, progress=False, report=False)
    r = cli(
        "export",
        rd.path,
        "--to",
        "transformer-lens",
        "--step",
        6,
        "--out",
        tmp_path / "tl",
        "--verify",
    )
    assert r.exit_code == 0, r.output
    assert r.output.count("max |logit difference|") == 2
    for name in ("L1d16", "L1d32"):
        cfg = json.loads((tmp_path / "tl" / name / "config.json").read_text())
        assert cfg["normalization_type"] == "LNPre" and not cfg["attn_only"]
