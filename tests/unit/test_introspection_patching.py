"""Two-sentence thought-injection localization with activation patching, on a tiny
randomly initialised GPT-2 built here: the patch hook, known effects (0 before the
injection layer, 1 for every position at or after it), the CLI folder, bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("transformers")

from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from phasewatch.cli.app import app  # noqa: E402
from phasewatch.evals import hooks  # noqa: E402
from phasewatch.evals import introspection as I  # noqa: E402
from phasewatch.evals import patching as P  # noqa: E402
from phasewatch.models.hf import byte_tokenizer  # noqa: E402

N_LAYERS, INJ = 4, 2


def tiny_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=259, n_positions=1024, n_embd=32, n_layer=N_LAYERS, n_head=2,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=257,
                     eos_token_id=258, pad_token_id=256)  # fmt: skip
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer(["<|pad|>", "<|bos|>", "<|eos|>"])


@pytest.fixture(scope="module")
def table(tok):
    return P.evaluate_patching(tiny_gpt2(), tok, layer=INJ, scale=10.0, trials=3, seed=1,
                               data=I.load_data())  # fmt: skip


def test_patch_hook_replaces_only_masked_positions():
    model = tiny_gpt2()
    layers = hooks.decoder_layers(model)
    ids = torch.arange(10)[None].expand(2, 10)
    source = torch.full((10, 32), 7.0)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[1, [2, 5]] = True
    with torch.no_grad(), hooks.record([layers[1]]) as clean:
        model(ids)
    with torch.no_grad(), hooks.patch(layers[1], source, mask), hooks.record([layers[1]]) as seen:
        model(ids)
    out = seen[0]
    assert torch.equal(out[0], clean[0][0]) and (out[1, [2, 5]] == 7.0).all()
    keep = [i for i in range(10) if i not in (2, 5)]
    assert torch.equal(out[1, keep], clean[0][1, keep])


def test_no_effect_before_the_injection_layer(table):
    assert len(table) == 3 * N_LAYERS * len(P.GROUPS)
    before = table[table["layer"] < INJ]
    assert (before["ld_patched"] - before["ld_corrupt"]).abs().max() < 1e-4
    eff = P.effects(table).set_index(["layer", "group"])["effect"]
    assert all(abs(eff[(ell, g)]) < 1e-3 for ell in range(INJ) for g in P.GROUPS)


def test_patching_every_position_restores_the_clean_run(table):
    after = table[(table["layer"] >= INJ) & (table["group"] == "all")]
    assert (after["ld_patched"] - after["ld_clean"]).abs().max() < 1e-4
    eff = P.effects(table).set_index(["layer", "group"])["effect"]
    assert all(eff[(ell, "all")] == pytest.approx(1.0, abs=1e-3) for ell in range(INJ, N_LAYERS))
    # the clean and corrupted runs differ, so the effects are defined
    assert (table["ld_clean"] != table["ld_corrupt"]).all()


def test_two_sentence_accuracy_known_answer():
    df = pd.DataFrame({"trial": [0, 1, 2, 3], "ld_clean": [1.0, 2.0, -1.0, 0.5],
                       "ld_corrupt": [-1.0, 1.0, -2.0, -0.5]})  # fmt: skip
    s = P.two_sentence_accuracy(df)
    assert s["correct"] == 6 and s["predictions"] == 8 and s["accuracy"] == 0.75
    assert s["mean_ld_difference"] == pytest.approx(1.25)


def test_cli_patching_mode_writes_the_folder(tok, tmp_path):
    folder_in = tmp_path / "gpt2"
    tiny_gpt2().save_pretrained(folder_in)
    tok.save_pretrained(folder_in)
    out = tmp_path / "runs"
    r = CliRunner().invoke(app, ["eval", "introspection", "--model", str(folder_in), "--mode",
                                 "patching", "--trials", "2", "--layer", "0.5", "--out",
                                 str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    (folder,) = out.iterdir()
    eff = pd.read_parquet(folder / "effects.parquet")
    assert len(eff) == N_LAYERS * len(P.GROUPS)
    info = json.loads((folder / "summary.json").read_text())
    assert info["layer"] == 2 and info["predictions"] == 4 and info["chance"] == 0.5
    assert (folder / "figures" / "patching.png").stat().st_size > 5_000
    assert "activation patching" in (folder / "summary.md").read_text()
    assert "answer position" in r.output


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--mode", "heads"], "--mode='heads' is invalid; allowed: single, patching"),
        (["--mode", "patching", "--sweep", "layers"], "allowed: single with --sweep/--models"),
    ],
)
def test_bad_mode_exits_2(tmp_path, args, needle):
    out = tmp_path / "runs"
    r = CliRunner().invoke(app, ["eval", "introspection", "--model", str(tmp_path), "--out",
                                 str(out), *args])  # fmt: skip
    assert r.exit_code == 2, r.output
    (line,) = r.stderr.strip().splitlines()
    assert needle in line and not out.exists()
