"""A tiny MLP watched while trained with FSDP (``fully_shard``) on two ranks, or unwrapped in
one process, launched by tests/unit/test_watch_distributed.py as

    torchrun --nproc_per_node 2 watch_fsdp_script.py fsdp OUT REPORT_DIR   (gloo, CPU)
    python watch_fsdp_script.py single OUT REPORT_DIR

Both train the same model from the same seed with SGD on the same 64 samples: under FSDP
each rank on its half (FSDP averages the ranks' gradients: the full batch's mean-loss
gradient), in one process on the whole batch. So the weights, and the signals measured on
them, agree up to float rounding. Each rank writes ``REPORT_DIR/<mode>-rank<r>.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from phasewatch import Watcher
from phasewatch.watch.probe import cross_entropy
from phasewatch.watch.ranks import mean_across_ranks

STEPS = 30
SETTINGS = {
    "llc": {"chains": 2, "draws": 10, "burn_in": 5},
    "hessian": {"top_k": 2, "lanczos_steps": 8, "hutchinson_probes": 4},
}


def mlp() -> nn.Module:
    """The model, initialised from seed 0 (the same on every rank and in one process)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


def main(mode: str, out: str, report: str) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()  # 3 classes
    model, rank, mine = mlp(), 0, slice(None)
    if mode == "fsdp":
        dist.init_process_group("gloo")
        from torch.distributed.fsdp import fully_shard

        rank = dist.get_rank()
        mine = slice(32 * rank, 32 * (rank + 1))
        for layer in (model[0], model[2]):
            fully_shard(layer)
        fully_shard(model)
    watch = Watcher(
        model,
        out=out,
        steps=STEPS,
        every=5,
        expensive_every=15,
        checkpoint_every=10,
        signals=("geometry", "gradients", "llc", "hessian"),
        settings=SETTINGS,
        probe_batch=(x[:16], y[:16]),
        loss_fn=cross_entropy,
        replica=mlp,  # built on rank 0 only; ignored in one process
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(STEPS):
        loss = nn.functional.cross_entropy(model(x[mine]), y[mine])
        opt.zero_grad()
        loss.backward()
        opt.step()
        watch.step(step, mean_across_ranks({"train/loss": loss.detach()}))
    block = watch.close()
    result = {
        "rank": rank,
        "run_dir": watch.rd is not None,
        "replica": watch.gather.replica is not None if watch.gather else None,
        "refreshes": watch.gather.refreshes if watch.gather else 0,
        "last_step": block["last_step"],
        "problems": block["problems"],
    }
    Path(report, f"{mode}-rank{rank}.json").write_text(json.dumps(result))
    if mode == "fsdp":
        dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
