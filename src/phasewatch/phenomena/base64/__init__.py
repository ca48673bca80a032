"""Base64 scale ladder: tiny transformers of increasing size learn base64 (emergence across scale).

Base64Bench (2025) finds that encoding and decoding base64 without tools appears only in
large language models; Schaeffer et al. (2023, "Are emergent abilities of large language
models a mirage?") argue that such jumps can come from all-or-nothing metrics. This
phenomenon trains a *ladder* of small decoder-only transformers (one run folder, all
members trained on the same batches) on base64 encode and decode of short strings and
measures each member, at every eval step, with Base64Bench's own scorer and with smooth
metrics, so that ``phasewatch mirage`` can compare them across size and training steps.

Data: texts of 1-``max_len`` bytes, a fraction ``word_frac`` made of common English words
(1-3, space-separated, cut to ``max_len``), the rest random visible ASCII. Each sequence is
``<bos> <encode|decode> source <sep> target <eos>`` over a byte-level vocabulary (ids
0-255 are bytes, then 6 special tokens), padded to ``n_ctx``; the loss is the
cross-entropy of the target bytes and ``<eos>``. Fresh batches every step, half encode
and half decode.

Metrics (per member ``<m>`` = ``L<layers>d<d_model>``, on a fixed held-out set of
``eval_size`` texts, half per direction):
    ``exact/<m>``: accuracy at threshold 1.0 of the Base64Bench scorer on the greedy answer.
    ``acc95/<m>``: accuracy at threshold 0.95. ``similarity/<m>``: mean similarity.
    ``char_acc/<m>``: per-character accuracy of the target under teacher forcing.
    ``logprob/<m>``: mean log-likelihood (nats per token) of the target bytes and <eos>.
    ``exact/<direction>/<m>``, ``char_acc/<direction>/<m>``: the same per direction;
    ``exact/max``, ``char_acc/max``: best member.

Preset ``ladder`` (default): five members 1×16, 1×32, 2×48, 2×64, 2×128 (layers × d_model;
heads of 16; MLP 4×; pre-LayerNorm; GELU): 12k to 466k parameters (39×; 3.2k to 394k
without embeddings, 125×), texts up to 12 bytes, batch 128, AdamW lr 3e-3, 1,500 steps.
Seed 0, final step (727 s of CPU on one thread, ~12 min on an idle core): exact match
0.008, 0.305, 0.625, 0.719, 0.930; per-character accuracy 0.345, 0.712, 0.912, 0.950, 0.991;
target log-likelihood -2.33 → -0.027 nats per token (the largest beats the smallest on
every metric). Answers are at most 16 characters, so one wrong character already puts
the similarity below 0.95: acc95 equals exact match here.
The largest member is exported in Hugging Face format to ``<run>/hf`` for inspect's
``hf/local`` provider (:mod:`phasewatch.models.hf`). Needs the ``evals`` extra
(Levenshtein for the scorer, transformers for the export).

Code: the config in :mod:`.config`, the texts and tokens in :mod:`.data`, the members and
one seed's task in :mod:`.task`, the scoring in :mod:`.scores`, the Hugging Face export in
:mod:`.export` and the whole-run findings in :mod:`.findings`; this module holds the
preset and the registration.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor

from phasewatch.config import OnsetRule, TrainConfig
from phasewatch.phenomena.base import Findings, Preset, register
from phasewatch.phenomena.base64.config import Base64LadderConfig
from phasewatch.phenomena.base64.findings import findings
from phasewatch.phenomena.base64.task import Base64LadderTask

__all__ = ["Base64Ladder", "Base64LadderConfig"]


class Base64Ladder:
    """The base64 scale ladder (registered as ``base64-ladder``)."""

    name = "base64-ladder"
    config_cls = Base64LadderConfig
    default_preset = "ladder"
    onsets = (
        OnsetRule("exact_match_50", "exact/max", "cross", ">=", 0.5),
        OnsetRule("char_acc_90", "char_acc/max", "cross", ">=", 0.9),
    )
    presets = {
        "ladder": Preset(
            task=Base64LadderConfig(),
            train=TrainConfig(
                steps=1_500,
                lr=3e-3,
                weight_decay=0.01,
                beta1=0.9,
                beta2=0.98,
                warmup_steps=100,
                eval_every=100,
                checkpoint_every=500,
            ),
            description="5 members 1x16..2x128 (12k-466k params), texts <= 12 bytes, "
            "batch 128, AdamW lr 3e-3, 1.5k steps",
            # phasewatch calibrate --epsilons 3e-4,1e-3,3e-3 --gammas 10,100 at step 500 of a
            # run (seed 0, --steps 500) and step 1,500 of a full run of this preset (seed 0;
            # 2026-12-04; ~8.5 CPU-min each): every point passes at both; the rule
            # recommends ε 3e-3, γ 10 at both (the widened grid's corner; λ̂ 664 and 842)
            signals={"llc": {"epsilon": 3e-3, "gamma": 10.0}},
        ),
    }

    def build(self, cfg: Base64LadderConfig, train: TrainConfig) -> Base64LadderTask:
        """One seed's task: every member, the data streams and the per-eval measures."""
        return Base64LadderTask(cfg, train)

    def checkpoint_measures(
        self,
        cfg: Base64LadderConfig,
        train: TrainConfig,
        checkpoints: Iterator[tuple[int, dict[str, Tensor]]],
        final: dict[str, Tensor],
    ) -> Findings:
        """Final scores, the member table and the export of the largest member (the
        checkpoints are not read): see :func:`~phasewatch.phenomena.base64.findings.findings`."""
        return findings(cfg, train, final)


register(Base64Ladder())
