"""Issue 20: values checked before anything is written (device, seed range, finite floats,
non-empty splits and names, a memory estimate), and the run store's small repairs: ``.tmp``
files cleaned on resume, the thread count in force in env.json, one file mode, a report
that degrades section by section."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from phasewatch import api
from phasewatch.cli.app import app
from phasewatch.config import MAX_SEED, TrainConfig, estimate_bytes, from_dict, override
from phasewatch.errors import ConfigError
from phasewatch.phenomena.grokking.config import GrokkingConfig
from phasewatch.store import open_run


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One tiny finished grokking run trained with threads=1 under a process default of 2."""
    from tiny_configs import GROKKING

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = tmp_path_factory.mktemp("validation")
        rd = api.run("grokking", "quick", GROKKING | {"threads": 1}, out=out, progress=False)
    finally:
        torch.set_num_threads(before)
    return rd.path


def _copy(run: Path, dest: Path) -> Path:
    return Path(shutil.copytree(run, dest, ignore=shutil.ignore_patterns(".run.lock")))


# ---- validation -------------------------------------------------------------------------
def test_seed_range_is_torch_s():
    assert TrainConfig(seed=MAX_SEED).seed == MAX_SEED
    with pytest.raises(ConfigError, match=r"seed=.*2\*\*63 - 1"):
        TrainConfig(seed=MAX_SEED + 1)


@pytest.mark.parametrize("field", ["lr", "weight_decay"])
@pytest.mark.parametrize("value", [float("inf"), float("nan"), float("-inf")])
def test_non_finite_floats_are_refused_everywhere(field, value):
    with pytest.raises(ConfigError, match=f"^{field}=.*finite"):
        override(TrainConfig(), {field: value})
    with pytest.raises(ConfigError, match="train_frac=.*finite|train_frac=.*in \\(0, 1\\)"):
        from_dict(GrokkingConfig, {"train_frac": value})


def test_train_frac_must_leave_a_training_and_a_test_pair():
    with pytest.raises(ConfigError, match=r"train_frac=0\.0001.*0 training pairs"):
        GrokkingConfig(p=17, train_frac=0.0001)
    assert GrokkingConfig(p=17, train_frac=1 / 289).n_pairs == 289


def test_huge_primes_validate_fast_and_are_refused_by_the_memory_estimate(tmp_path):
    cfg = GrokkingConfig(p=1_000_003)  # Miller-Rabin: no trial division up to 10^3
    assert estimate_bytes(cfg) > 10**15
    with pytest.raises(ConfigError, match="GiB of memory is needed"):
        api.run("grokking", "quick", {"p": 1_000_003}, out=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_memory_estimate_of_a_config_without_its_own():
    from phasewatch.phenomena.induction.config import InductionConfig

    small, big = InductionConfig(), InductionConfig(d_model=100_000_000)
    assert estimate_bytes(small) < 2**30 < estimate_bytes(big)
    assert estimate_bytes(small, copies=4) == 4 * estimate_bytes(small)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a CPU-only torch")
@pytest.mark.parametrize("device", ["cuda", "cuda:abc", "cuda:0"])
def test_a_device_this_torch_lacks_is_refused_before_the_run_folder(tmp_path, device):
    with pytest.raises(ConfigError, match=f"device='{device}'.*allowed: cpu"):
        api.run("grokking", "quick", {"device": device}, out=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []
    frozen = TrainConfig(device=device) if device != "cuda:abc" else None
    assert frozen is None or frozen.device == device  # the config itself stays portable


def test_detect_start_event_lists_the_run_s_onsets(finished, tmp_path):
    run = _copy(finished, tmp_path / "r")
    res = CliRunner().invoke(app, ["detect", str(run), "--start-event", "nope"])
    assert res.exit_code == 2
    assert "memorisation" in res.stderr and "nope" in res.stderr


# ---- the store's repairs ----------------------------------------------------------------
def test_resume_removes_leftover_tmp_files(finished, tmp_path):
    run = _copy(finished, tmp_path / "r")
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps(status | {"status": "interrupted"}))
    left = [run / ".metrics.parquet.abc123.tmp", run / "checkpoints" / ".step_000040.x.tmp"]
    for f in left:
        f.write_bytes(b"half")
    api.run("grokking", resume=run, progress=False, report=False)
    assert not any(f.exists() for f in left)
    assert open_run(run).status()["status"] == "done"


def test_env_json_records_the_threads_the_run_trains_with(finished):
    env = json.loads((finished / "env.json").read_text())
    assert env["torch_threads"] == 1


def test_checkpoints_have_the_mode_of_every_other_file(finished):
    umask = os.umask(0)
    os.umask(umask)
    want = 0o666 & ~umask
    files = [finished / "config.json", finished / "metrics.parquet"]
    files += sorted((finished / "checkpoints").glob("*.safetensors"))
    assert {f.stat().st_mode & 0o777 for f in files} == {want}


def test_a_failing_section_becomes_a_box_and_the_page_is_written(finished, tmp_path, monkeypatch):
    import phasewatch.report.html as page

    run = _copy(finished, tmp_path / "r")
    (run / "report.html").unlink(missing_ok=True)

    def broken(*args, **kwargs):
        raise ValueError("Data has no positive values, and therefore cannot be log-scaled.")

    monkeypatch.setattr(page, "curves_figure", broken)
    (run / "status.json").write_text("[]")
    res = CliRunner().invoke(app, ["report", str(run)])
    assert res.exit_code == 0, res.output
    html = (run / "report.html").read_text()
    assert "curves: could not draw this section: Data has no positive values" in html
    assert "status.json: could not draw this section:" in html
    assert "<h2>Config</h2>" in html


def test_an_unwritable_report_location_exits_2_with_the_path(finished, tmp_path):
    run = _copy(finished, tmp_path / "r")
    (run / "report.html").unlink(missing_ok=True)
    (run / "report.html").mkdir()
    res = CliRunner().invoke(app, ["report", str(run)])
    assert res.exit_code == 2
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(run / "report.html") in line
