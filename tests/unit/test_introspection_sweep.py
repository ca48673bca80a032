"""Thought-injection sweeps (layers, scale) and accuracy against parameter count
(``--models``) on tiny randomly initialised GPT-2 models built here: tables, figures,
consistency with single runs, a vanishing injection scoring exactly chance, bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("transformers")

from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from phasewatch.cli.app import app  # noqa: E402
from phasewatch.evals import introspection as I  # noqa: E402
from phasewatch.evals import introspection_sweep as S  # noqa: E402
from phasewatch.models.hf import byte_tokenizer  # noqa: E402


def tiny_gpt2(n_layer: int = 3, n_embd: int = 32, seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=259, n_positions=1024, n_embd=n_embd, n_layer=n_layer, n_head=2,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=257,
                     eos_token_id=258, pad_token_id=256)  # fmt: skip
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer(["<|pad|>", "<|bos|>", "<|eos|>"])


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, tok):
    base = tmp_path_factory.mktemp("gpt2s")
    sizes = {"small": (2, 16), "medium": (3, 32), "large": (4, 48)}
    for name, (n_layer, n_embd) in sizes.items():
        tiny_gpt2(n_layer, n_embd).save_pretrained(base / name)
        tok.save_pretrained(base / name)
    return base


def run(args: list[str]):
    r = CliRunner().invoke(app, ["eval", "introspection", *args])
    return r


def test_layer_sweep_rows_match_single_runs(dirs, tok, tmp_path):
    out = tmp_path / "runs"
    r = run(["--model", str(dirs / "medium"), "--sweep", "layers", "--trials", "2", "--out",
             str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    (folder,) = out.iterdir()
    sweep = pd.read_parquet(folder / "sweep.parquet")
    assert sweep["layer"].tolist() == [0, 1, 2] and (sweep["predictions"] == 10).all()
    assert (folder / "figures" / "sweep_layers.png").stat().st_size > 5_000
    assert "layers sweep" in (folder / "summary.md").read_text()
    assert len(pd.read_parquet(folder / "predictions.parquet")) == 30
    model = GPT2LMHeadModel.from_pretrained(dirs / "medium").eval()
    single = I.evaluate(model, tok, layer=1, scale=10.0, trials=2, seed=0)
    row = sweep.set_index("layer").loc[1]
    assert row["accuracy"] == I.summarise(single)["accuracy"]
    assert row["mean_p_correct"] == pytest.approx(single["p_correct"].mean(), rel=1e-5)
    assert "layer" in r.output and str(folder) in r.output


def test_vanishing_scale_scores_exactly_chance(dirs, tmp_path):
    out = tmp_path / "runs"
    r = run(["--model", str(dirs / "small"), "--sweep", "scale", "--scales", "1e-7,10",
             "--layer", "1", "--trials", "3", "--out", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    (folder,) = out.iterdir()
    sweep = pd.read_parquet(folder / "sweep.parquet").set_index("scale")
    pred = pd.read_parquet(folder / "predictions.parquet")
    tiny = pred[pred["scale"] == 1e-7]
    # each sentence is injected once per trial: an unchanged guess is right exactly once
    assert (tiny["guess"] == tiny["baseline_guess"]).all()
    assert sweep.loc[1e-7, "accuracy"] == pytest.approx(0.2)
    assert (folder / "figures" / "sweep_scale.png").exists()


def test_models_sorted_by_parameters(dirs, tmp_path):
    out = tmp_path / "runs"
    names = ",".join(str(dirs / n) for n in ("large", "small", "medium"))
    r = run(["--models", names, "--trials", "2", "--layer", "0.5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    (folder,) = out.iterdir()
    sweep = pd.read_parquet(folder / "sweep.parquet")
    assert [m.rsplit("/", 1)[-1] for m in sweep["model"]] == ["small", "medium", "large"]
    assert sweep["parameters"].is_monotonic_increasing and sweep["layer"].tolist() == [1, 1, 2]
    assert (sweep["mean_p_correct"] <= sweep["mean_p_correct_in_digits"] + 1e-9).all()
    info = json.loads((folder / "summary.json").read_text())
    assert info["sweep"] == "models" and len(info["models"]) == 3
    assert (folder / "figures" / "sweep_models.png").stat().st_size > 5_000


def test_parse_layers_and_scales():
    assert S.parse_layers(None, 4) == [0, 1, 2, 3] and S.parse_layers("3,0.5,0", 4) == [0, 2, 3]
    assert S.parse_scales("10,1,10") == [1.0, 10.0] and S.parse_scales(None)[0] == 1.0


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--sweep", "heads"], "--sweep='heads' is invalid; allowed: layers, scale"),
        (["--sweep", "scale", "--scales", "0,1"], "--scales='0,1' is invalid; allowed: comma"),
        (["--sweep", "layers", "--layers", "0,7"], "--layer='7' is invalid; allowed: an index"),
        (["--models", "{d}/small"], "--model="),
        (["--models", "{d}/small", "--sweep", "layers", "--model", None], "no --sweep with"),
        (["--models", "{d}/small,{d}/missing", "--model", None], "--model='{d}/missing'"),
    ],
)
def test_bad_input_exits_2_with_one_line(dirs, tmp_path, args, needle):
    out = tmp_path / "runs"
    base = ["--out", str(out), "--trials", "1"]
    if "--model" not in args:
        base += ["--model", str(dirs / "small")]
    args = [a.replace("{d}", str(dirs)) for a in args if a not in ("--model", None)]
    r = run(base + args)
    assert r.exit_code == 2, r.output
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: ") and needle.replace("{d}", str(dirs)) in line
    assert not out.exists()
