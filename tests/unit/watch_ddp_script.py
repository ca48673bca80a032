"""A tiny DDP run watched on every rank, launched by tests/unit/test_watch_distributed.py as
``torchrun --nproc_per_node 2 watch_ddp_script.py OUT REPORT_DIR`` (gloo, CPU).

Each rank trains the same MLP on its own half of a fixed batch, hands the Watcher its
training loss averaged over ranks (``mean_across_ranks``) and a synthetic metric whose
variance rises (so early warnings fire), and writes ``REPORT_DIR/rank<r>.json``: its own
losses, the warnings its ``on_warning`` received and what ``close()`` returned.
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

STEPS = 200


def main(out: str, report: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()  # 3 classes
    rising = torch.randn(STEPS, generator=g) * torch.linspace(0.1, 3.0, STEPS)  # (STEPS,)
    model = nn.parallel.DistributedDataParallel(
        nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    )
    got: list = []
    watch = Watcher(
        model,
        out=out,
        steps=STEPS,
        every=5,
        checkpoint_every=50,
        probe_batch=(x[:16], y[:16]),
        loss_fn=cross_entropy,
        on_warning=got.append,
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mine = slice(32 * rank, 32 * (rank + 1))
    losses = []
    for step in range(STEPS):
        loss = nn.functional.cross_entropy(model(x[mine]), y[mine])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        metrics = mean_across_ranks({"train/loss": loss.detach(), "rising": rising[step]})
        watch.step(step, metrics)
    block = watch.close()
    result = {
        "rank": rank,
        "losses": losses,
        "warnings": sorted([w.step, w.key, w.indicator] for w in got),
        "block_warnings": sorted([w["step"], w["key"], w["indicator"]] for w in block["warnings"]),
        "last_step": block["last_step"],
        "run_dir": watch.rd is not None,
    }
    Path(report, f"rank{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
