"""The Watcher under torch.distributed, for real: ``torchrun --nproc_per_node 2`` on the
gloo backend (CPU) trains a tiny model with plain DDP (tests/unit/watch_ddp_script.py),
FSDP (watch_fsdp_script.py), HF Trainer (watch_hf_ddp_script.py) and Lightning
(watch_lightning_ddp_script.py); rank 0 writes the one run directory, rank 1 writes nothing
and receives rank 0's warnings; FSDP's signals, gathered into rank 0's replica, equal the
unwrapped model's in one process. And the single-process pieces (ranks from the
environment, DDP unwrapping, FSDP without a replica refused, FSDP on a one-rank process
group). The torchrun tests are ``slow``
(``pytest -m slow tests/unit/test_watch_distributed.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from phasewatch.errors import ConfigError
from phasewatch.store import open_run
from phasewatch.watch import ranks

SCRIPT = Path(__file__).with_name("watch_ddp_script.py")
FSDP_SCRIPT = Path(__file__).with_name("watch_fsdp_script.py")


@pytest.mark.slow  # ~14 s CPU in 3 processes (torch imported thrice); 38 s wall under load
def test_two_ranks_under_torchrun_write_one_run_from_rank_0(tmp_path):
    out, report = tmp_path / "run", tmp_path / "report"
    report.mkdir()
    _torchrun(SCRIPT, str(out), str(report))
    r0, r1 = (json.loads((report / f"rank{r}.json").read_text()) for r in (0, 1))
    assert (r0["run_dir"], r1["run_dir"]) == (True, False)  # only rank 0 writes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "run"]  # one run folder
    rd = open_run(out)
    cfg = rd.config()
    assert rd.status()["status"] == "done" and rd.status()["step"] == 199
    assert cfg["train"]["world_size"] == 2 and cfg["task"]["model"] == "Sequential"  # unwrapped
    m = rd.metrics().query("key == 'train/loss'").set_index("step")["value"]
    assert list(m.index) == list(range(200))
    mean = (pd.Series(r0["losses"]) + pd.Series(r1["losses"])) / 2  # the ranks' mean
    assert (m.to_numpy() - mean.to_numpy()).__abs__().max() < 1e-6
    assert r0["losses"] != r1["losses"]  # the ranks did differ
    sig = pd.read_parquet(out / "signals.parquet").query("key == 'grad/norm'")
    assert sorted(sig["step"]) == list(range(0, 200, 5))  # signals on rank 0's replica
    assert rd.checkpoint_steps() == [0, 50, 100, 150]
    # warnings fired on rank 0 and were broadcast to rank 1; close() agrees on both ranks
    assert r0["warnings"] and r1["warnings"] == r0["warnings"]
    assert r1["block_warnings"] == r0["block_warnings"] == r0["warnings"]
    assert r1["last_step"] == r0["last_step"] == 199


def _torchrun(script: Path, *args: str) -> None:
    """``torchrun --standalone --nproc_per_node 2 script args`` (gloo, CPU); must succeed."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(SCRIPT.parent)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    done = subprocess.run([*cmd, "2", str(script), *args], capture_output=True, text=True,
                          env=env, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow  # ~12 s CPU in 3 processes plus ~5 s in this one; ~25 s wall at load 5
def test_fsdp_signals_under_torchrun_equal_the_unwrapped_model_in_one_process(tmp_path):
    import watch_fsdp_script as script

    report = tmp_path / "report"
    report.mkdir()
    _torchrun(FSDP_SCRIPT, "fsdp", str(tmp_path / "fsdp"), str(report))
    script.main("single", str(tmp_path / "single"), str(report))  # the same training, unwrapped
    r0, r1 = (json.loads((report / f"fsdp-rank{r}.json").read_text()) for r in (0, 1))
    assert (r0["run_dir"], r1["run_dir"]) == (True, False)  # only rank 0 writes
    assert (r0["replica"], r1["replica"]) == (True, False)  # only rank 0 builds the replica
    assert r0["refreshes"] == r1["refreshes"] == 7  # when made + steps 0, 5, ..., 25
    assert r0["problems"] == ["updates/gram_* not computed under FSDP"]
    fsdp, single = open_run(tmp_path / "fsdp"), open_run(tmp_path / "single")
    assert fsdp.config()["train"]["world_size"] == 2 and fsdp.status()["status"] == "done"
    sig = {k: pd.read_parquet(tmp_path / k / "signals.parquet").set_index(["step", "key"])
           for k in ("fsdp", "single")}  # fmt: skip
    a, b = sig["fsdp"]["value"], sig["single"]["value"]
    assert list(a.index) == list(b.index)  # the same signals at the same steps
    keys = {k.split("/")[0] for k in a.index.get_level_values("key")}
    assert keys == {"geometry", "grad", "llc", "hessian"}
    assert sorted(set(a.index.get_level_values("step"))) == [0, 5, 10, 15, 20, 25]
    assert ((a - b).abs() <= 1e-4 * b.abs() + 1e-6).all()  # float rounding only
    assert fsdp.checkpoint_steps() == single.checkpoint_steps() == [0, 10, 20]
    for step in (0, 20):
        got, want = fsdp.load_checkpoint(step), single.load_checkpoint(step)
        assert all(torch.allclose(got[k], want[k], atol=1e-6) for k in want)
    loss = {k: r.metrics().query("key == 'train/loss'")["value"].to_numpy()
            for k, r in (("fsdp", fsdp), ("single", single))}  # fmt: skip
    assert len(loss["fsdp"]) == 30 and abs(loss["fsdp"] - loss["single"]).max() < 1e-5


def _two_ranks(report: Path, prefix: str) -> tuple[dict, dict]:
    """Both ranks' reports; rank 0 alone wrote a run folder, and every rank received the
    same warnings (at least one) from ``on_warning`` and ``close()``."""
    r0, r1 = (json.loads((report / f"{prefix}-rank{r}.json").read_text()) for r in (0, 1))
    assert (r0["world"], r1["world"]) == (2, 2)
    assert (r0["run_dir"], r1["run_dir"]) == (True, False)
    assert r0["warnings"] and r1["warnings"] == r0["warnings"]
    assert r1["block_warnings"] == r0["block_warnings"] == r0["warnings"]
    assert r1["last_step"] == r0["last_step"] == 60
    return r0, r1


@pytest.mark.slow  # ~20 s CPU in 3 processes (torch and transformers imported thrice)
def test_hf_trainer_under_torchrun_writes_one_run_from_rank_0(tmp_path):
    pytest.importorskip("transformers")
    report = tmp_path / "report"
    report.mkdir()
    _torchrun(SCRIPT.with_name("watch_hf_ddp_script.py"), str(tmp_path / "run"), str(report))
    _two_ranks(report, "hf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "run"]  # one run folder
    rd = open_run(tmp_path / "run")
    assert rd.status()["status"] == "done" and rd.config()["train"]["world_size"] == 2
    steps = rd.metrics().groupby("key")["step"].agg(list)
    for key in ("train/loss", "train/rising"):  # the Trainer's logs, every step
        assert steps[key] == list(range(1, 61))
    sig = pd.read_parquet(tmp_path / "run" / "signals.parquet").query("key == 'grad/norm'")
    assert sorted(sig["step"]) == list(range(2, 61, 2))  # signals on rank 0's replica


@pytest.mark.slow  # ~20 s CPU in 3 processes (torch and lightning imported thrice)
def test_lightning_under_torchrun_writes_one_run_from_rank_0(tmp_path):
    pytest.importorskip("lightning")
    report = tmp_path / "report"
    report.mkdir()
    script = SCRIPT.with_name("watch_lightning_ddp_script.py")
    _torchrun(script, str(tmp_path / "run"), str(report))
    r0, r1 = _two_ranks(report, "pl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "run"]
    rd = open_run(tmp_path / "run")
    assert rd.status()["status"] == "done" and rd.config()["train"]["world_size"] == 2
    m = rd.metrics()
    assert sorted(m.query("key == 'rising'")["step"]) == list(range(1, 61))
    loss = m.query("key == 'train/loss'").set_index("step")["value"]
    assert list(loss.index) == list(range(1, 61))
    mean = (pd.Series(r0["losses"]) + pd.Series(r1["losses"])) / 2  # the ranks' mean
    assert r0["losses"] != r1["losses"] and abs(loss.to_numpy() - mean.to_numpy()).max() < 1e-6
    sig = pd.read_parquet(tmp_path / "run" / "signals.parquet").query("key == 'grad/norm'")
    assert sorted(sig["step"]) == list(range(2, 61, 2))


def test_ranks_come_from_the_environment_before_a_process_group(tmp_path, monkeypatch):
    from phasewatch import Watcher

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert ranks.ranks() == ranks.Ranks(1, 2, False)
    model = nn.Sequential(nn.Linear(4, 3))
    watch = Watcher(model, out=tmp_path / "r", signals=["geometry"], every=2)
    for step in range(6):
        watch.step(step, {"train/loss": 1.0})
    assert watch.close() == {} and not (tmp_path / "r").exists()  # rank 1 writes nothing
    monkeypatch.setenv("RANK", "0")
    watch = Watcher(model, out=tmp_path / "r", signals=["geometry"], every=2)
    watch.step(0, {"train/loss": 1.0})
    watch.close()
    assert open_run(tmp_path / "r").config()["train"]["world_size"] == 2


def test_sync_is_due_on_new_cadence_steps_only():
    sync = ranks.Sync(ranks.Ranks(0, 2, True), every=5)
    due = [s for s in (0, 0, 3, 5, 5, 4, 10, -1, True, 11, 15) if sync.due(s)]
    assert due == [0, 5, 10, 15]
    assert not ranks.Sync(ranks.Ranks(), every=5).due(0)  # one process: never


def test_a_ddp_wrapper_is_unwrapped_and_fsdp_without_replica_is_refused_with_signals(tmp_path):
    from phasewatch import Watcher

    inner = nn.Linear(2, 2)
    assert ranks.unwrap(nn.DataParallel(inner)) is inner and ranks.unwrap(inner) is inner
    assert not ranks.is_sharded(inner)
    fsdp = pytest.importorskip("torch.distributed.fsdp")

    layer = nn.Linear(2, 2)  # given the class fully_shard gives a module (unsharded here)
    layer.__class__ = type("FSDPLinear", (fsdp.FSDPModule, nn.Linear), {})
    sharded = nn.Sequential(layer)
    assert ranks.is_sharded(sharded)
    with pytest.raises(ConfigError, match=r"replica=None is invalid; allowed: a model of"):
        Watcher(sharded, out=tmp_path / "a", signals=["geometry"])
    with pytest.raises(ConfigError, match=r"replica='Tensor' is invalid"):
        Watcher(sharded, out=tmp_path / "b", signals=["geometry"], replica=torch.zeros(2))
    with pytest.raises(ConfigError, match=r"replica='FSDPLinear' is invalid"):
        Watcher(sharded, out=tmp_path / "c", signals=["geometry"], replica=lambda: layer)
    watch = Watcher(sharded, out=tmp_path / "d", signals=())  # metrics only: no gather
    assert watch.gather is None and watch.model is sharded
    assert "updates/gram_* not computed under FSDP" in watch.close()["problems"]


@pytest.fixture
def one_rank_group():
    """A gloo process group of one rank in this process (destroyed afterwards)."""
    import torch.distributed as dist

    store = dist.HashStore()
    dist.init_process_group("gloo", rank=0, world_size=1, store=store)
    yield
    dist.destroy_process_group()


def test_fsdp_signals_on_the_replica_equal_the_unwrapped_model(tmp_path, one_rank_group):
    from torch.distributed.fsdp import fully_shard

    from phasewatch import Watcher
    from phasewatch.watch.probe import cross_entropy

    def mlp(hidden=8):
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3))

    x, y = torch.randn(16, 4, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 3
    kw = dict(signals=["geometry", "gradients"], every=2, checkpoint_every=2)
    kw |= dict(probe_batch=(x, y), loss_fn=cross_entropy)
    sharded = mlp()
    sharded[0].weight.data.mul_(3.0)  # weights unlike a fresh replica's: the gather matters
    plain = mlp()
    plain.load_state_dict(sharded.state_dict())
    fully_shard(sharded)
    with pytest.raises(ConfigError, match=r"replica=.*size mismatch for 0.weight"):
        Watcher(sharded, out=tmp_path / "bad", replica=lambda: mlp(hidden=5), **kw)
    runs = {}
    for name, model in (("fsdp", sharded), ("plain", plain)):
        watch = Watcher(model, out=tmp_path / name, replica=mlp, **kw)
        watch.step(0, {"train/loss": 1.0})
        watch.step(1, {"train/loss": 1.0})
        watch.close()
        runs[name] = pd.read_parquet(tmp_path / name / "signals.parquet").set_index(["step", "key"])
    assert watch.gather is None  # the unsharded model is measured as it is
    fsdp, plain_sig = runs["fsdp"]["value"], runs["plain"]["value"]
    assert list(fsdp.index) == list(plain_sig.index) and len(fsdp) > 10
    assert (fsdp - plain_sig).abs().max() < 1e-6
    ckpt = open_run(tmp_path / "fsdp").load_checkpoint(0)
    assert torch.equal(ckpt["0.weight"], plain.state_dict()["0.weight"])


def test_mean_across_ranks_in_one_process_keeps_the_numbers():
    got = ranks.mean_across_ranks({"a": torch.tensor(2.0), "b": 3, "c": "x"})
    assert got == {"a": 2.0, "b": 3.0}
