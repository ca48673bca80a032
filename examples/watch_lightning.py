"""Watch a Lightning ``Trainer.fit``: a small MLP learning a teacher network's classes.

    python examples/watch_lightning.py --out runs/watch-pl
    phasewatch report runs/watch-pl

A 2-layer MLP student learns the argmax of a fixed random teacher on Gaussian inputs.
``WatcherCallback`` is the only phasewatch line; it records weight geometry and gradients
every ``--every`` steps, the metrics the module logs, and raises causal early warnings.
About 15 s on one CPU core.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import lightning
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from phasewatch.watch.lightning import WatcherCallback
from phasewatch.watch.probe import cross_entropy


def teacher_data(n: int, d: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.randn(d, classes, generator=g)
    return x, (torch.tanh(x @ w) @ torch.randn(classes, classes, generator=g)).argmax(-1)


class Student(lightning.LightningModule):
    def __init__(self, d: int, classes: int, hidden: int = 64, lr: float = 3e-3) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, classes))
        self.lr = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, classes)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        self.log("train/loss", loss)
        self.log("train/acc", (logits.argmax(-1) == y).float().mean())
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


def build(d: int = 16, classes: int = 4) -> tuple[nn.Module, object]:
    """The Watcher's factory: model and loss for ``phasewatch measure`` on the checkpoints."""
    return Student(d, classes), cross_entropy


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/watch-pl"))
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--every", type=int, default=10, help="signal cadence (steps)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint-every", type=int, default=None, help="save weights (steps)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    args = parse(argv)
    lightning.seed_everything(args.seed, verbose=False)
    d, classes = 16, 4
    x, y = teacher_data(4096, d, classes, args.seed)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    callback = WatcherCallback(
        args.out,
        probe_batch=(x[:256], y[:256]),
        loss_fn=cross_entropy,
        every=args.every,
        on_warning=print,
        factory="watch_lightning:build",
        checkpoint_every=args.checkpoint_every,
        factory_kwargs={"d": d, "classes": classes},
    )
    with tempfile.TemporaryDirectory() as tmp:
        trainer = lightning.Trainer(
            max_steps=args.steps,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            log_every_n_steps=5,
            callbacks=[callback],
            default_root_dir=tmp,
        )
        trainer.fit(Student(d, classes), loader)
    o = callback.watch.overhead()
    print(f"run: {args.out}\nwatcher overhead: {o['percent_of_step_time']:.1f}% of step time")
    return args.out


if __name__ == "__main__":
    main()
