"""A phenomenon defined entirely outside ``src/``: importing this module registers it.

``toy-teacher``: a one-hidden-layer ReLU MLP learns the sign of a random linear teacher
on Gaussian inputs (``x ~ N(0, I_d)``, ``y = [w·x > 0]``); test accuracy rises from
chance within a few dozen full-batch AdamW steps. It has one hook point (the hidden
layer), per-sample losses and probe inputs, so every built-in signal applies, and its own
report section (registered here too), to show that a new phenomenon and its section need
no edit under ``src/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from phasewatch import phenomena
from phasewatch.config import OnsetRule, TrainConfig, require
from phasewatch.models import HookPoint
from phasewatch.report.registry import section

NAME = "toy-teacher"


@dataclass(frozen=True)
class ToyConfig:
    """Teacher–student data and the student's width.

    Attributes:
        d: input dimension.
        hidden: hidden ReLU units.
        n_train: training samples (full batch).
        n_test: held-out samples.
    """

    d: int = 8
    hidden: int = 16
    n_train: int = 64
    n_test: int = 256

    def __post_init__(self) -> None:
        for name in ("d", "hidden", "n_train", "n_test"):
            require(getattr(self, name) >= 1, name, "an integer >= 1", getattr(self, name))


class Student(nn.Module):
    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.inp, self.out = nn.Linear(d, hidden), nn.Linear(hidden, 2)
        self.hook_hidden = HookPoint()

    def forward(self, x: Tensor) -> Tensor:  # (batch, d) -> (batch, 2)
        return self.out(self.hook_hidden(torch.relu(self.inp(x))))


class ToyTask:
    def __init__(self, cfg: ToyConfig, train: TrainConfig) -> None:
        g = torch.Generator().manual_seed(train.seed)
        teacher = torch.randn(cfg.d, generator=g)
        x = torch.randn(cfg.n_train + cfg.n_test, cfg.d, generator=g)
        y = (x @ teacher > 0).long()
        self.x, self.y = x[: cfg.n_train], y[: cfg.n_train]
        self.x_test, self.y_test = x[cfg.n_train :], y[cfg.n_train :]
        torch.manual_seed(train.seed)
        self.model = Student(cfg.d, cfg.hidden)

    def per_sample_loss(self, step: int) -> Tensor:
        return F.cross_entropy(self.model(self.x), self.y, reduction="none")

    def train_loss(self, step: int) -> Tensor:
        return self.per_sample_loss(step).mean()

    def probe_inputs(self, step: int) -> Tensor:
        return self.x

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        out = {}
        for split, x, y in (("train", self.x, self.y), ("test", self.x_test, self.y_test)):
            logits = self.model(x)
            out[f"{split}/loss"] = F.cross_entropy(logits, y).item()
            out[f"{split}/acc"] = (logits.argmax(-1) == y).float().mean().item()
        return out


class ToyTeacher:
    name = NAME
    config_cls = ToyConfig
    presets = {
        "tiny": phenomena.Preset(
            ToyConfig(),
            TrainConfig(
                steps=60, lr=1e-2, weight_decay=0.0, eval_every=5, checkpoint_every=10, threads=1
            ),
            "64 samples, 60 full-batch steps",
        )
    }
    default_preset = "tiny"
    onsets = (OnsetRule("memorisation", "train/acc", "cross", ">=", 0.99),)

    def build(self, cfg: ToyConfig, train: TrainConfig) -> ToyTask:
        return ToyTask(cfg, train)

    def checkpoint_measures(
        self,
        cfg: ToyConfig,
        train: TrainConfig,
        checkpoints: Iterator[tuple[int, dict[str, Tensor]]],
        final: dict[str, Tensor],
    ) -> phenomena.Findings:
        """One whole-run progress measure: the input weights' cosine to the final ones."""
        w_end = final["inp.weight"].flatten()
        rows = [
            (
                step,
                "progress/cos_to_final",
                F.cosine_similarity(s["inp.weight"].flatten(), w_end, 0).item(),
            )
            for step, s in checkpoints
        ]
        return phenomena.Findings(rows=rows, events={"toy": {"checkpoints": len(rows)}})


phenomena.register(ToyTeacher())


@section(NAME)
def toy_section(run) -> list[str]:
    n = run.events().get("toy", {}).get("checkpoints")
    return [f"<h2 id='toy-section'>Toy teacher</h2><p>{n} checkpoints compared.</p>"]
