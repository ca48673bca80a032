"""A Lightning ``Trainer.fit`` (strategy ``ddp``, CPU: gloo) watched on every rank,
launched by tests/unit/test_watch_distributed.py as
``torchrun --nproc_per_node 2 watch_lightning_ddp_script.py OUT REPORT_DIR``.

A small MLP learns a fixed labelling for 60 steps; Lightning's distributed sampler hands
each rank its own half of the data, so the ranks' losses differ. The module logs its own
loss (no ``sync_dist``) and a metric of rising variance (so that early warnings fire);
each rank writes ``REPORT_DIR/pl-rank<r>.json``: its own losses, the warnings its
``on_warning`` received, what ``close()`` returned and whether it has a run directory.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from phasewatch.watch.lightning import WatcherCallback
from phasewatch.watch.probe import cross_entropy

STEPS = 60


class MLP(lightning.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
        g = torch.Generator().manual_seed(1)
        self.rising = torch.randn(STEPS, generator=g) * torch.linspace(0.1, 3.0, STEPS)
        self.losses: list[float] = []  # this rank's own, by step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, 3)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.losses.append(loss.item())
        self.log("train/loss", loss)  # this rank's own: the callback averages over ranks
        self.log("rising", self.rising[self.trainer.global_step])
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def main(out: str, report: str) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(512, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()  # 3 classes
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    module = MLP()
    got: list = []
    watcher = WatcherCallback(
        out, probe_batch=(x[:16], y[:16]), loss_fn=cross_entropy, every=2, on_warning=got.append
    )
    trainer = lightning.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_steps=STEPS,
        log_every_n_steps=1,
        callbacks=[watcher],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader)
    block = watcher.watch.close()  # closed at on_train_end: the same block again
    rank = trainer.global_rank
    result = {
        "rank": rank,
        "world": trainer.world_size,
        "losses": module.losses,
        "warnings": sorted([w.step, w.key, w.indicator] for w in got),
        "block_warnings": sorted([w["step"], w["key"], w["indicator"]] for w in block["warnings"]),
        "last_step": block["last_step"],
        "run_dir": watcher.watch.rd is not None,
    }
    Path(report, f"pl-rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
