"""Export a phasewatch transformer to TransformerLens (``HookedTransformer``, transformer-lens < 4).

A :class:`~phasewatch.models.Transformer` is a ``HookedTransformer`` with standard learned
positional embeddings, untied embed/unembed and zero attention and unembedding biases; a
:class:`~phasewatch.models.NormedTransformer` with ``layernorm=True`` uses TransformerLens's
``LNPre`` normalisation (LayerNorm without gain or bias, eps 1e-5) before every attention
layer, MLP and the unembedding. Parameter names are already TransformerLens's
(``blocks.0.attn.W_Q`` has shape (n_heads, d_model, d_head) in both), so the export adds
the zero biases (``b_Q``, ``b_K``, ``b_V``, ``b_O``, ``b_U``) and writes:

- ``config.json``: keyword arguments of ``HookedTransformerConfig``;
- ``model.safetensors``: the parameters (no buffers: ``attn.mask`` and ``attn.IGNORE`` are
  rebuilt by TransformerLens, so load with ``strict=False``; :func:`load_hooked` checks
  that nothing else is missing).

Only :func:`load_hooked` needs the ``tl`` extra (transformer-lens < 4); the export does not.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from safetensors.torch import load_file
from torch import Tensor, nn

from phasewatch.errors import ConfigError, MissingDependency, StoreError
from phasewatch.models.transformer import Transformer
from phasewatch.store.atomic import write_dir, write_json, write_safetensors

CONFIG, WEIGHTS = "config.json", "model.safetensors"
_BUFFERS = ("mask", "IGNORE")  # TransformerLens attention buffers, rebuilt on construction


def require_transformer(model: nn.Module) -> Transformer:
    """``model`` if it is a phasewatch transformer.

    Raises:
        ConfigError: for any other module (superposition's autoencoder, an MLP, ...).
    """
    if not isinstance(model, Transformer):
        raise ConfigError(
            f"model: a {type(model).__name__}; allowed: a phasewatch Transformer "
            "(grokking, induction, base64-ladder members)"
        )
    return model


def tl_config(model: nn.Module, *, name: str = "phasewatch") -> dict[str, Any]:
    """``HookedTransformerConfig`` keyword arguments describing ``model``.

    Args:
        model: a :class:`Transformer` or :class:`NormedTransformer`.
        name: stored as ``model_name``.

    Raises:
        ConfigError: if ``model`` is not a phasewatch transformer.
    """
    cfg = require_transformer(model).cfg
    attn_only = cfg.d_mlp == 0
    return {
        "n_layers": cfg.n_layers,
        "d_model": cfg.d_model,
        "n_ctx": cfg.n_ctx,
        "d_head": cfg.d_head,
        "n_heads": cfg.n_heads,
        "d_mlp": None if attn_only else cfg.d_mlp,
        "d_vocab": cfg.d_vocab,
        "d_vocab_out": cfg.d_vocab_out,
        "act_fn": cfg.act,  # relu, or exact gelu (TransformerLens's "gelu" is F.gelu)
        "attn_only": attn_only,
        "normalization_type": "LNPre" if getattr(model, "layernorm", False) else None,
        "eps": 1e-5,
        "positional_embedding_type": "standard",
        "default_prepend_bos": False,
        "model_name": name,
    }


def tl_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The parameters of ``model`` in ``HookedTransformer`` layout (detached, on the CPU),
    with zero biases where phasewatch has none.

    Raises:
        ConfigError: if ``model`` is not a phasewatch transformer.
    """
    cfg = require_transformer(model).cfg
    sd = {k: v.detach().cpu() for k, v in model.named_parameters()}
    for i in range(cfg.n_layers):
        p = f"blocks.{i}.attn."
        for b in ("b_Q", "b_K", "b_V"):
            sd[p + b] = torch.zeros(cfg.n_heads, cfg.d_head)
        sd[p + "b_O"] = torch.zeros(cfg.d_model)
    sd["unembed.b_U"] = torch.zeros(cfg.d_vocab_out)
    return sd


def export_tl(model: nn.Module, folder: str | Path, *, name: str = "phasewatch") -> Path:
    """Write ``config.json`` and ``model.safetensors`` for TransformerLens into ``folder``
    (replaced whole; nothing half-written on failure).

    Raises:
        ConfigError: if ``model`` is not a phasewatch transformer.
        StoreError: if ``folder`` cannot be written.
    """
    cfg, sd = tl_config(model, name=name), tl_state_dict(model)

    def write(tmp: Path) -> None:
        """Fill the temporary folder."""
        write_json(tmp / CONFIG, cfg)
        write_safetensors(tmp / WEIGHTS, sd, {"format": "pt", "library": "transformer_lens"})

    folder = Path(folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"--out {folder}: not writable ({e.strerror})") from None
    write_dir(folder, write)
    return folder


def require_tl() -> None:
    """Raise :class:`MissingDependency` unless transformer-lens is importable."""
    if importlib.util.find_spec("transformer_lens") is None:
        raise MissingDependency(
            "transformer-lens is not installed; install: pip install 'phasewatch[tl]'"
        )


def load_hooked(folder: str | Path) -> Any:
    """A ``HookedTransformer`` (eval mode, CPU) built from an :func:`export_tl` folder.

    Raises:
        MissingDependency: without the ``tl`` extra.
        ConfigError: if the folder's weights do not fit its config.
    """
    require_tl()
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    folder = Path(folder)
    kwargs = json.loads((folder / CONFIG).read_text())
    model = HookedTransformer(HookedTransformerConfig(**kwargs, init_weights=False))
    result = model.load_state_dict(load_file(folder / WEIGHTS), strict=False)
    missing = [k for k in result.missing_keys if k.rsplit(".", 1)[-1] not in _BUFFERS]
    if missing or result.unexpected_keys:
        raise ConfigError(
            f"{folder}: weights do not fit the config (missing {missing[:3]}, "
            f"unexpected {result.unexpected_keys[:3]})"
        )
    return model.eval()


def sample_tokens(model: nn.Module, batch: int = 4, *, seed: int = 0) -> Int[Tensor, "batch pos"]:
    """Random token ids (batch, n_ctx) for comparing logits, from a fixed seed."""
    cfg = require_transformer(model).cfg
    g = torch.Generator().manual_seed(seed)
    return torch.randint(cfg.d_vocab, (batch, cfg.n_ctx), generator=g)


@torch.no_grad()
def max_logit_gap(model: nn.Module, hooked: Any, tokens: Int[Tensor, "batch pos"]) -> float:
    """Largest absolute difference between ``model``'s and ``hooked``'s logits on ``tokens``
    (both in eval mode, on the CPU)."""
    ours: Float[Tensor, "batch pos vocab"] = model.eval()(tokens)
    theirs: Float[Tensor, "batch pos vocab"] = hooked(tokens)
    return float((ours - theirs).abs().max())
