"""A Hugging Face ``Trainer`` run watched on every rank, launched by
tests/unit/test_watch_distributed.py as
``torchrun --nproc_per_node 2 watch_hf_ddp_script.py OUT REPORT_DIR`` (CPU: the Trainer
makes a gloo process group and wraps the model in DDP itself).

A 1-layer GPT-2 (d_model 16, built from a config: nothing is downloaded) learns to copy
sequences for 60 steps. An earlier callback adds a metric of rising variance to the
Trainer's logs (so that early warnings fire); each rank writes
``REPORT_DIR/hf-rank<r>.json``: the warnings its ``on_warning`` received, what ``close()``
returned and whether it has a run directory.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from phasewatch.watch.hf import WatcherCallback

STEPS = 60


class Rising(TrainerCallback):
    """Adds ``rising`` (noise of linearly growing scale, the same on every rank) to the logs."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(1)
        self.values = torch.randn(STEPS + 1, generator=g) * torch.linspace(0.1, 3.0, STEPS + 1)

    def on_log(self, args, state, control, logs=None, **kw):
        if logs is not None and "loss" in logs:
            logs["rising"] = float(self.values[state.global_step])


def main(out: str, report: str) -> None:
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=16, n_positions=8, n_embd=16, n_layer=1, n_head=2)
    model = GPT2LMHeadModel(cfg)
    g = torch.Generator().manual_seed(0)
    first = torch.randint(0, 16, (128, 4), generator=g)
    ids = torch.cat([first, first], 1)  # (128, 8)
    data = [{"input_ids": x, "labels": x.clone()} for x in ids]
    probe = {"input_ids": ids[:16], "labels": ids[:16].clone()}
    got: list = []
    watcher = WatcherCallback(out, probe_batch=probe, every=2, on_warning=got.append)
    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(
            output_dir=tmp,
            max_steps=STEPS,
            per_device_train_batch_size=8,
            learning_rate=3e-3,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            ddp_backend="gloo",
            ddp_find_unused_parameters=False,
            disable_tqdm=True,
            seed=0,
        )
        trainer = Trainer(model=model, args=targs, train_dataset=data,
                          callbacks=[Rising(), watcher])  # fmt: skip
        trainer.train()
        rank = trainer.args.process_index
    block = watcher.watch.close()  # closed at on_train_end: the same block again
    result = {
        "rank": rank,
        "world": trainer.args.world_size,
        "warnings": sorted([w.step, w.key, w.indicator] for w in got),
        "block_warnings": sorted([w["step"], w["key"], w["indicator"]] for w in block["warnings"]),
        "last_step": block["last_step"],
        "run_dir": watcher.watch.rd is not None,
    }
    Path(report, f"hf-rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
