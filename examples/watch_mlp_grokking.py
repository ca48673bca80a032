"""Watch a plain PyTorch training loop: an MLP grokking modular addition.

    python examples/watch_mlp_grokking.py --out runs/watch-mlp --checkpoint-every 200
    phasewatch report runs/watch-mlp        # signals, early warnings, overhead
    PYTHONPATH=examples phasewatch measure runs/watch-mlp --signals llc \
        --factory watch_mlp_grokking:build   # later, via build(): named on the command line

A two-token embedding MLP learns (a + b) mod p from half of the pairs with full-batch
AdamW and strong weight decay (it memorises in ~300 steps and generalises near step 1,500);
the Watcher records its weight geometry and gradients on a 256-pair probe batch every
``--every`` steps and raises causal early warnings while it trains. About 30 s on one CPU
core.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from phasewatch import Watcher
from phasewatch.detect.transitions import Target
from phasewatch.watch.probe import cross_entropy


def make_data(p: int, train_frac: float, seed: int):
    """All pairs (a, b) with label (a + b) mod p, split at random: (x, y) tensors."""
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    x = torch.stack([a.reshape(-1), b.reshape(-1)], 1)  # (p², 2)
    y = (x[:, 0] + x[:, 1]) % p  # (p²,)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n = int(train_frac * len(x))
    return (x[perm[:n]], y[perm[:n]]), (x[perm[n:]], y[perm[n:]])


def make_model(p: int, d: int = 64, hidden: int = 256) -> nn.Module:
    """Embed both tokens, concatenate, one hidden ReLU layer, logits over p classes."""
    return nn.Sequential(
        nn.Embedding(p, d), nn.Flatten(), nn.Linear(2 * d, hidden), nn.ReLU(), nn.Linear(hidden, p)
    )


def build(p: int = 59) -> tuple[nn.Module, object]:
    """The Watcher's factory: the model and loss ``phasewatch measure`` rebuilds later (it
    loads each checkpoint's weights into the model)."""
    return make_model(p), cross_entropy


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/watch-mlp"))
    ap.add_argument("--p", type=int, default=59)
    ap.add_argument("--train-frac", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--every", type=int, default=100, help="signal cadence (steps)")
    ap.add_argument("--eval-every", type=int, default=10, help="metrics cadence (steps)")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=1.0)
    ap.add_argument("--probe-size", type=int, default=256, help="training pairs in the probe")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--signals", default="geometry,gradients")
    ap.add_argument("--checkpoint-every", type=int, default=None, help="save weights (steps)")
    ap.add_argument("--no-watch", action="store_true", help="train without the Watcher")
    return ap.parse_args(argv)


def train(args: argparse.Namespace, watch: Watcher | None = None) -> nn.Module:
    """The user's own loop; ``watch`` (if any) is the only phasewatch line in it."""
    torch.manual_seed(args.seed)
    (xtr, ytr), (xte, yte) = make_data(args.p, args.train_frac, args.seed)
    model = make_model(args.p) if watch is None else watch.model
    opt = torch.optim.AdamW(
        model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.98)
    )
    for step in range(args.steps):
        loss = nn.functional.cross_entropy(model(xtr), ytr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        metrics = {}
        if step % args.eval_every == 0:
            with torch.no_grad():
                logits = model(xte)
                metrics = {
                    "train/loss": loss.item(),
                    "val/loss": nn.functional.cross_entropy(logits, yte).item(),
                    "val/acc": (logits.argmax(-1) == yte).float().mean().item(),
                }
        if watch is not None:
            watch.step(step, metrics=metrics)
    return model


def main(argv: list[str] | None = None) -> Path | None:
    """Train (watched unless ``--no-watch``); return the run directory."""
    args = parse(argv)
    torch.manual_seed(args.seed)
    model = make_model(args.p)
    if args.no_watch:
        train(args, None)
        return None
    (xtr, ytr), _ = make_data(args.p, args.train_frac, args.seed)
    watch = Watcher(
        model,
        out=args.out,
        steps=args.steps,
        every=args.every,
        signals=[s for s in args.signals.split(",") if s],
        probe_batch=(xtr[: args.probe_size], ytr[: args.probe_size]),
        loss_fn=cross_entropy,
        on_warning=print,
        target=Target("val/acc", 0.99),
        checkpoint_every=args.checkpoint_every,
        hparams=vars(args) | {"out": str(args.out)},
        factory="watch_mlp_grokking:build",
        factory_kwargs={"p": args.p},
    )
    train(args, watch)
    block = watch.close()
    o = block["overhead"]
    print(
        f"run: {args.out}\nwatcher overhead: {o['percent_of_step_time']:.1f}% of step time "
        f"(+{o['setup_seconds'] + o['close_seconds']:.1f} s to set up and close)"
    )
    return args.out


if __name__ == "__main__":
    main()
