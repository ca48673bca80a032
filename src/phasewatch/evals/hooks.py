"""Forward hooks on the decoder layers of a Hugging Face causal LM: read and steer the
residual stream.

"The residual stream at layer ``l``" is the output of decoder layer ``l`` (the hidden
state after block ``l``; ``hidden_states[l + 1]`` of ``output_hidden_states``). Hooks
read it (:func:`record`) or add a vector to it at chosen positions (:func:`inject`), so
an injection at layer ``l`` changes the outputs of layers ``>= l`` only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from jaxtyping import Bool, Float
from torch import Tensor, nn

from phasewatch.errors import ConfigError

# Where common architectures keep their decoder layers (Llama/Mistral/Qwen, GPT-2, NeoX).
_PATHS = ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers")


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of ``model``, in order.

    Raises:
        ConfigError: naming ``--model`` if no list of ``config.num_hidden_layers`` layers
            is found.
    """
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for path in _PATHS:
        obj: Any = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, nn.ModuleList) and len(obj) == n:
            return obj
    for mod in model.modules():
        if isinstance(mod, nn.ModuleList) and len(mod) == n:
            return mod
    raise ConfigError("--model is invalid; allowed: a causal LM with a list of decoder layers")


def _hidden(output: Any) -> Tensor:
    return output[0] if isinstance(output, tuple) else output


def _replace(output: Any, hidden: Tensor) -> Any:
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


@contextmanager
def inject(
    layer: nn.Module, vector: Float[Tensor, " d_model"], mask: Bool[Tensor, "batch pos"]
) -> Iterator[None]:
    """Within the block, add ``vector`` to ``layer``'s output where ``mask`` is True.

    Args:
        layer: one decoder layer.
        vector: added at each masked position (already scaled), (d_model,).
        mask: which (row, token) positions receive it, (B, T) like the input ids.
    """

    def _hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        h = _hidden(output)  # (B, T, d)
        add = mask[..., None].to(h.dtype) * vector.to(h.dtype)  # (B, T, d)
        return _replace(output, h + add)

    handle = layer.register_forward_hook(_hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def record(layers: Sequence[nn.Module]) -> Iterator[list[Tensor]]:
    """Within the block, collect each layer's output: the yielded list gets, per forward
    pass, one (B, T, d_model) tensor per layer in order (detached)."""
    seen: list[Tensor] = []
    handles = [
        layer.register_forward_hook(lambda _m, _i, out: seen.append(_hidden(out).detach()))
        for layer in layers
    ]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


@contextmanager
def patch(
    layer: nn.Module, source: Float[Tensor, "pos d_model"], mask: Bool[Tensor, "batch pos"]
) -> Iterator[None]:
    """Within the block, replace ``layer``'s output by ``source`` where ``mask`` is True
    (activation patching: Meng et al. 2022, "Locating and Editing Factual Associations in
    GPT", §2.1; Heimersheim & Nanda 2024, "How to use and interpret activation patching").

    Args:
        layer: one decoder layer (hooks registered earlier on it run first).
        source: the activations to write in, from another run of the same tokens, (T, d).
        mask: which (row, token) positions are replaced, (B, T).
    """

    def _hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        h = _hidden(output)  # (B, T, d)
        keep = ~mask[..., None]  # (B, T, 1)
        return _replace(output, h.where(keep, source.to(h.dtype)[None]))  # (B, T, d)

    handle = layer.register_forward_hook(_hook)
    try:
        yield
    finally:
        handle.remove()
