"""Watch a Hugging Face ``Trainer`` run: a tiny GPT-2 learning to copy sequences.

    python examples/watch_hf_trainer.py --out runs/watch-hf
    phasewatch report runs/watch-hf

Each training sequence is 8 random tokens followed by the same 8 tokens; a 2-layer GPT-2
(d_model 32, built from a config: nothing is downloaded) learns to copy them, the
in-context skill induction heads implement. ``WatcherCallback`` is the only phasewatch
line; it records weight geometry and gradients every ``--every`` steps, the Trainer's logs,
and raises causal early warnings. About 20 s on one CPU core.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from phasewatch.watch.hf import WatcherCallback
from phasewatch.watch.probe import hf_loss


def copy_data(n: int, half: int, vocab: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """``n`` sequences ``[t_1..t_half, t_1..t_half]``; labels = inputs (the model shifts)."""
    g = torch.Generator().manual_seed(seed)
    first = torch.randint(0, vocab, (n, half), generator=g)
    ids = torch.cat([first, first], 1)  # (n, 2·half)
    return [{"input_ids": x, "labels": x.clone()} for x in ids]


VOCAB, HALF = 32, 8


def build() -> tuple[GPT2LMHeadModel, object]:
    """The Watcher's factory: a 2-layer GPT-2 (d_model 32) and its own loss, for
    ``phasewatch measure`` on the checkpoints."""
    cfg = GPT2Config(vocab_size=VOCAB, n_positions=2 * HALF, n_embd=32, n_layer=2, n_head=2)
    return GPT2LMHeadModel(cfg), hf_loss


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/watch-hf"))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=10, help="signal cadence (steps)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint-every", type=int, default=None, help="save weights (steps)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    args = parse(argv)
    torch.manual_seed(args.seed)
    model, _ = build()
    data = copy_data(4096, HALF, VOCAB, args.seed)
    probe = {k: torch.stack([d[k] for d in data[:64]]) for k in ("input_ids", "labels")}
    callback = WatcherCallback(
        args.out,
        probe_batch=probe,
        every=args.every,
        on_warning=print,
        factory="watch_hf_trainer:build",
        checkpoint_every=args.checkpoint_every,
    )
    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(
            output_dir=tmp,
            max_steps=args.steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate=3e-3,
            logging_steps=5,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
            seed=args.seed,
        )
        Trainer(model=model, args=targs, train_dataset=data, callbacks=[callback]).train()
    o = callback.watch.overhead()
    print(f"run: {args.out}\nwatcher overhead: {o['percent_of_step_time']:.1f}% of step time")
    return args.out


if __name__ == "__main__":
    main()
