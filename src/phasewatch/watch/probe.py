"""The probe of a watched run: the user's model, a fixed probe batch and a loss function.

:class:`WatchedTask` gives a user's model the task interface the signal runner measures
(:mod:`phasewatch.signals.runner`): ``train_loss(step)`` is the loss on the probe batch,
``per_sample_loss(step)`` exists when the loss function returns one loss per sample.
The :class:`~phasewatch.watch.Watcher` measures it in the training process.

For ``phasewatch measure`` on the stored checkpoints later, nothing executable is stored
in the run: the probe batch is ``<run>/watch/probe.safetensors`` (its tensors, with the
batch's structure — a tensor, or a tuple/list/dict of them — as JSON metadata), and the
model and loss function are rebuilt by the user's own *factory*, an import string
``"package.module:function"`` recorded in ``config.json`` (``task.factory``, called with
``task.factory_kwargs``) that returns ``(model, loss_fn)``; each checkpoint's weights are
then loaded into the rebuilt model (:func:`load_task`). A run folder may come from anyone,
so its factory is imported only when the user vouches for it: ``--factory`` with the same
import string, or ``--trust-run-factory`` (:func:`trusted_factory`).

Loss functions take ``(model, batch)`` and return per-sample losses ``(n,)`` in nats or
their mean; ready-made ones: :func:`cross_entropy` (``batch = (x, y)``) and :func:`hf_loss`
(a Hugging Face model called on a dict batch with ``labels``).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import Tensor, nn

from phasewatch.errors import ConfigError, StoreError
from phasewatch.signals.trajectory import NotApplicable
from phasewatch.store import RunDir
from phasewatch.store.atomic import write_safetensors

WATCHED = "watch"  # the ``phenomenon`` recorded in a watched run's config.json

PROBE_FILE = "watch/probe.safetensors"
LossFn = Callable[[nn.Module, Any], Tensor]
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_SCALARS = (bool, int, float, str, type(None))


def cross_entropy(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Per-sample cross-entropy (nats) of ``model(x)`` against integer labels ``y``.

    Args:
        batch: ``(x, y)`` with ``model(x)`` logits ``(n, classes)`` or ``(n, ..., classes)``
            and ``y`` of shape ``(n,)`` or ``(n, ...)``.

    Returns:
        ``(n,)`` losses (averaged over any positions).
    """
    x, y = batch
    logits = model(x)  # (n, ..., C)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
    return loss.reshape(y.shape[0], -1).mean(1)


def hf_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """The scalar loss (nats per token) a Hugging Face model returns for ``model(**batch)``."""
    return model(**batch).loss


def batch_size(batch: Any) -> int | None:
    """Leading dimension of the first tensor in ``batch`` (a tensor, sequence or dict)."""
    if torch.is_tensor(batch):
        return int(batch.shape[0]) if batch.ndim else None
    items = batch.values() if isinstance(batch, dict) else batch
    if isinstance(items, (list, tuple)) or isinstance(batch, dict):
        for v in items:
            n = batch_size(v)
            if n is not None:
                return n
    return None


class WatchedTask:
    """A user's model as a signal-runner task (see module docstring).

    ``probe_logits``/``probe_targets`` hand a classifier's ``(n, classes)`` output and
    integer labels to the ``logit_scale`` and ``ntk_alignment`` precursors; for any other
    model they raise :class:`~phasewatch.signals.trajectory.NotApplicable`.

    Raises:
        ConfigError: if ``loss_fn(model, batch)`` fails, does not return a finite float
            tensor of shape () or (n,), or the probe size cannot be told.
    """

    def __init__(self, model: nn.Module, batch: Any, loss_fn: LossFn) -> None:
        self.model, self.batch, self.loss_fn = model, batch, loss_fn
        try:
            with torch.no_grad():
                out = loss_fn(model, batch)
        except Exception as e:
            raise ConfigError(
                f"loss_fn(model, probe_batch) failed ({type(e).__name__}: {e}); allowed: a "
                "function (model, batch) -> per-sample losses (n,) or their mean"
            ) from e
        ok = torch.is_tensor(out) and out.ndim <= 1 and out.is_floating_point()
        if not ok or not bool(torch.isfinite(out).all()):
            got = out.shape if torch.is_tensor(out) else type(out).__name__
            raise ConfigError(
                f"loss_fn returned {got}; allowed: a finite float tensor of shape () or (n,)"
            )
        self.per_sample = out.ndim == 1
        self.probe_size = int(out.shape[0]) if self.per_sample else batch_size(batch)
        if not self.probe_size:
            raise ConfigError(
                "probe_batch: cannot tell its size n; allowed: a tensor, tuple/list or dict "
                "of tensors with a leading batch dimension"
            )
        if self.per_sample:
            self.per_sample_loss = lambda step: self.loss_fn(self.model, self.batch)

    def train_loss(self, step: int) -> Tensor:
        """Mean loss (nats) of the model's current weights on the probe batch."""
        out = self.loss_fn(self.model, self.batch)
        return out.mean() if out.ndim else out

    def _model_output(self, rows: Tensor | None) -> Any:
        """The user's model on the probe batch (its ``rows`` only if given): ``model(x)``
        for ``(x, y)``, ``model(**b)`` for a dict (its ``.logits`` if any), ``model(b)``
        for a tensor."""
        b = self.batch
        if rows is not None:
            n = self.probe_size
            b = map_tensors(b, lambda t: t[rows] if t.ndim and t.shape[0] == n else t)
        if isinstance(b, dict):
            out = self.model(**b)
            return getattr(out, "logits", out)
        return self.model(b[0] if isinstance(b, (tuple, list)) else b)

    def probe_logits(self, step: int, rows: Tensor | None = None) -> Tensor:
        """The model's ``(n, classes)`` output on the probe batch (its ``rows`` only if
        given), as logits.

        Raises:
            NotApplicable: if that output is not a 2-D float tensor with a row per sample
                and at least 2 columns (a regression model has no logits).
        """
        out = self._model_output(rows)
        want = self.probe_size if rows is None else len(rows)
        ok = torch.is_tensor(out) and out.ndim == 2 and out.is_floating_point()
        if not ok or out.shape[0] != want or out.shape[1] < 2:
            got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise NotApplicable(
                f"needs the model's output on the probe batch as (n={want}, classes >= 2) "
                f"logits; got {got}"
            )
        return out

    def probe_targets(self, step: int) -> Tensor:
        """The integer labels ``y`` (n,) of an ``(x, y)`` probe batch.

        Raises:
            NotApplicable: if the batch is not ``(x, y)`` with y an (n,) integer tensor.
        """
        b = self.batch
        y = b[1] if isinstance(b, (tuple, list)) and len(b) == 2 else None
        if not (torch.is_tensor(y) and y.ndim == 1 and not y.is_floating_point()):
            raise NotApplicable("needs an (x, y) probe batch with integer labels y of shape (n,)")
        return y

    def evaluate(self) -> dict[str, float]:
        """No evaluation metrics: a watched run's metrics come from the user's loop."""
        return {}


# ---- the probe batch as safetensors -------------------------------------------------------
def map_tensors(batch: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """``batch`` with ``fn`` applied to every tensor in it (tuples, lists, dicts kept)."""
    if torch.is_tensor(batch):
        return fn(batch)
    if isinstance(batch, dict):
        return {k: map_tensors(v, fn) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(map_tensors(v, fn) for v in batch)
    return batch


def _flatten(batch: Any, tensors: dict[str, Tensor]) -> Any:
    """The JSON structure of ``batch``; its tensors go to ``tensors`` under ``t0, t1, ...``."""
    if torch.is_tensor(batch):
        name = f"t{len(tensors)}"
        tensors[name] = batch.detach()
        return {"tensor": name}
    if isinstance(batch, dict) and all(isinstance(k, str) for k in batch):
        return {"dict": {k: _flatten(v, tensors) for k, v in batch.items()}}
    if isinstance(batch, (list, tuple)):
        return {type(batch).__name__: [_flatten(v, tensors) for v in batch]}
    if isinstance(batch, _SCALARS):
        return {"value": batch}
    raise TypeError(
        f"{type(batch).__name__} in probe_batch; allowed: tensors, tuples/lists/dicts (str "
        "keys) of them, and numbers/strings/None"
    )


def _unflatten(tree: dict[str, Any], tensors: dict[str, Tensor]) -> Any:
    ((kind, v),) = tree.items()
    if kind == "tensor":
        return tensors[v]
    if kind == "dict":
        return {k: _unflatten(x, tensors) for k, x in v.items()}
    if kind in ("list", "tuple"):
        items = [_unflatten(x, tensors) for x in v]
        return tuple(items) if kind == "tuple" else items
    return v


def save_probe(run: RunDir, batch: Any) -> None:
    """Write ``batch`` to ``<run>/watch/probe.safetensors`` (atomically; tensors on CPU).

    Raises:
        TypeError: if ``batch`` holds something other than tensors, tuples, lists, dicts
            with str keys, numbers, strings or None.
    """
    tensors: dict[str, Tensor] = {}
    tree = _flatten(batch, tensors)
    (run.path / "watch").mkdir(exist_ok=True)
    write_safetensors(run.path / PROBE_FILE, tensors, {"structure": json.dumps(tree)})


def load_probe(run: RunDir, device: torch.device | str = "cpu") -> Any:
    """The probe batch stored by :func:`save_probe`, its tensors on ``device``.

    Raises:
        StoreError: if the file is missing or unreadable.
    """
    f = run.path / PROBE_FILE
    if not f.exists():
        raise StoreError(
            f"{run.path}: no {PROBE_FILE} (the Watcher had no probe_batch or could not "
            "store it; see events.json watch.problems), so signals cannot be measured later"
        )
    try:
        with safe_open(str(f), "pt", device=str(device)) as fh:
            tree = json.loads(fh.metadata()["structure"])
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        return _unflatten(tree, tensors)
    except Exception as e:  # safetensors and json raise several types on a bad file
        raise StoreError(f"{f}: unreadable probe batch ({type(e).__name__}: {e})") from e


# ---- the factory ------------------------------------------------------------------------
def resolve_factory(spec: str) -> Callable[..., Any]:
    """The function named by ``"package.module:function"`` (imported here).

    Raises:
        ConfigError: if ``spec`` is not of that form, cannot be imported, or is not callable.
    """
    if not isinstance(spec, str) or not _FACTORY.match(spec):
        raise ConfigError(
            f"factory={spec!r} is invalid; allowed: an import string 'package.module:function'"
        )
    module, _, name = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except Exception as e:
        raise ConfigError(
            f"factory={spec!r} is not importable here ({type(e).__name__}: {e}); allowed: "
            "an import string of a module on sys.path/PYTHONPATH"
        ) from None
    if not callable(obj):
        raise ConfigError(f"factory={spec!r} is a {type(obj).__name__}; allowed: a function")
    return obj


def check_factory(
    spec: str | None, kwargs: dict[str, Any] | None
) -> tuple[str | None, dict[str, Any]]:
    """``(spec, kwargs)`` as recorded in config.json, checked at the Watcher's construction.

    Raises:
        ConfigError: if ``spec`` is not an importable function (:func:`resolve_factory`)
            or ``kwargs`` is not a dict of JSON values with str keys.
    """
    if spec is not None:
        resolve_factory(spec)
    try:
        ok = kwargs is None or json.loads(json.dumps(kwargs)) == kwargs
    except (TypeError, ValueError):
        ok = False
    ok = ok and isinstance(kwargs or {}, dict)
    if not ok:
        raise ConfigError(
            f"factory_kwargs={kwargs!r} is invalid; allowed: None or a dict of JSON values "
            "(str keys)"
        )
    return spec, dict(kwargs or {})


def _json_kwargs(value: Any) -> bool:
    """Whether ``value`` is plain JSON data: None, bool, int, float, str, and lists and
    str-keyed dicts of them (nothing a factory could receive as an object to call)."""
    if isinstance(value, _SCALARS):
        return True
    if isinstance(value, list):
        return all(_json_kwargs(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_kwargs(v) for k, v in value.items())
    return False


def trusted_factory(
    run: RunDir, *, factory: str | None = None, trust_run_factory: bool = False
) -> tuple[str, dict[str, Any]]:
    """The recorded ``(factory, factory_kwargs)`` of a watched run, once the user has
    vouched for the factory: a run folder may come from anyone, and its factory is code,
    so nothing it names is imported unless the caller passes the same import string
    (``factory``, from ``--factory``) or ``trust_run_factory=True``. Checked before any
    import.

    Raises:
        ConfigError: if the run records no factory, neither ``factory`` nor
            ``trust_run_factory`` is given, ``factory`` differs from the recorded one, or
            the recorded kwargs are not plain JSON data.
    """
    cfg = run.config()["task"]
    spec = cfg.get("factory") if isinstance(cfg, dict) else None
    if not spec:
        raise ConfigError(
            f"{run.path}: a watched run without factory: `measure` cannot rebuild the model; "
            "pass Watcher(..., factory='your_module:build') where build() returns (model, "
            "loss_fn), or measure during training with Watcher(signals=[...]) "
            "(`detect` and `report` work without it)"
        )
    if not isinstance(spec, str) or not _FACTORY.match(spec):
        raise ConfigError(
            f"{run.path}: config.json task.factory={spec!r} is invalid; allowed: an import "
            "string 'package.module:function'"
        )
    if factory is not None and factory != spec:
        raise ConfigError(
            f"--factory {factory!r} differs from the run's recorded factory {spec!r} "
            "(config.json task.factory); allowed: the recorded one, once you trust it"
        )
    if factory is None and not trust_run_factory:
        raise ConfigError(
            f"{run.path}: rebuilding this watched run's model runs its recorded factory "
            f"{spec!r}; if you trust that code, pass --factory {spec} (Python: "
            f"factory={spec!r}) or --trust-run-factory"
        )
    kwargs = cfg.get("factory_kwargs") or {}
    if not isinstance(kwargs, dict) or not _json_kwargs(kwargs):
        raise ConfigError(
            f"{run.path}: config.json task.factory_kwargs is invalid; allowed: a dict of "
            "JSON values (str keys)"
        )
    return spec, kwargs


def load_task(
    run: RunDir, *, factory: str | None = None, trust_run_factory: bool = False
) -> WatchedTask:
    """The :class:`WatchedTask` of a watched run, rebuilt by its factory (weights: the
    factory's; the caller loads a checkpoint) in eval mode on the stored probe batch.

    Args:
        factory: the import string the user vouches for; it must equal the recorded one.
        trust_run_factory: run the recorded factory without ``factory``.

    Raises:
        ConfigError: if the run has no factory, the user has not vouched for it
            (:func:`trusted_factory`), it is not importable here, or it does not return
            ``(model, loss_fn)``; the message says what to pass.
        StoreError: if the probe batch is missing or unreadable.
    """
    spec, kwargs = trusted_factory(run, factory=factory, trust_run_factory=trust_run_factory)
    try:
        made = resolve_factory(spec)(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{run.path}: {e}; put the factory's module on PYTHONPATH") from None
    except Exception as e:
        raise ConfigError(f"{run.path}: factory {spec!r} raised {type(e).__name__}: {e}") from e
    ok = isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], nn.Module)
    if not ok or not callable(made[1]):
        raise ConfigError(
            f"{run.path}: factory {spec!r} returned {type(made).__name__}; allowed: a tuple "
            "(model: torch.nn.Module, loss_fn: (model, batch) -> Tensor)"
        )
    model, loss_fn = made
    model.eval()  # as the Watcher measures (no dropout)
    device = next(iter(model.parameters()), torch.empty(0)).device
    return WatchedTask(model, load_probe(run, device), loss_fn)
