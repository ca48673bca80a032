"""Sweep specs: one spec (phenomenon, preset, grid × seeds, fixed fields), its members and
``sweep.json``. Running and resuming a sweep is :mod:`phasewatch.sweep.runner`.

A sweep directory holds ``sweep.json`` (the spec and the training plan) and one ordinary
run directory per member, named deterministically from its grid point and seed::

    <out>/sweep.json
    <out>/train_frac=0.3,weight_decay=1.0/s7/   config.json, metrics.parquet, ...
    <out>/s7/                                   (a sweep without a grid)

Grid fields are sorted by name; floats are written as Python's ``repr`` (``0.3``,
``1e-05``), booleans as ``true``/``false``; characters other than letters, digits and
``._+=,-`` become ``_``. A member is indistinguishable from a ``phasewatch run`` of the
same config. Resuming a sweep trains only members that are not ``done`` or ``failed``,
each from its last checkpoint, into the same directory (never a second copy).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phasewatch.config import TrainConfig, require, require_choice
from phasewatch.errors import ConfigError, StoreError

SPEC_FILE = "sweep.json"
EXECUTORS = ("local", "ray")
STRATEGIES = ("auto", "batched", "single")
SPEC_KEYS = (
    "phenomenon",
    "preset",
    "seeds",
    "grid",
    "set",
    "executor",
    "workers",
    "address",
    "strategy",
    "report",
)


@dataclass(frozen=True)
class SweepSpec:
    """What to train: every grid point × every seed, with ``fixed`` fields on top of the preset.

    Attributes:
        phenomenon: a registered phenomenon (``grokking``).
        preset: one of its presets.
        seeds: the seeds of every grid point (integers >= 0).
        grid: field -> values; members are the Cartesian product (fields sorted by name).
        fixed: field -> value for every member (``--set``); ``threads`` defaults to 1
            (one torch thread per worker process).
        executor: ``local`` (a process pool on this machine) or ``ray``.
        workers: local worker processes (0 = the cores available).
        address: Ray cluster address (``auto``, ``host:port``; None starts a local Ray).
        strategy: ``auto`` (measure batched vs one at a time), ``batched`` or ``single``.
        report: write each member's ``report.html`` as well.
    """

    phenomenon: str
    preset: str
    seeds: tuple[int, ...]
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    executor: str = "local"
    workers: int = 0
    address: str | None = None
    strategy: str = "auto"
    report: bool = False

    def to_json(self) -> dict[str, Any]:
        """The spec as stored in ``sweep.json`` (``fixed`` under the key ``set``), the
        input :func:`build_spec` accepts back."""
        return {
            "phenomenon": self.phenomenon,
            "preset": self.preset,
            "seeds": list(self.seeds),
            "grid": {k: list(v) for k, v in self.grid.items()},
            "set": dict(self.fixed),
            "executor": self.executor,
            "workers": self.workers,
            "address": self.address,
            "strategy": self.strategy,
            "report": self.report,
        }

    def same_members(self, other: SweepSpec) -> bool:
        """Whether both specs define the same members (executor settings may differ)."""
        keys = ("phenomenon", "preset", "seeds", "grid", "set")
        a, b = self.to_json(), other.to_json()
        return all(a[k] == b[k] for k in keys)


@dataclass(frozen=True)
class Member:
    """One run of a sweep: its directory name (relative to the sweep), path and config."""

    name: str
    path: Path
    config: dict[str, Any]


# ---- parsing and type checks ----------------------------------------------------------------
def field_types(phenomenon: str) -> dict[str, type]:
    """Config field name -> Python type (int, float, str, bool) of the phenomenon's config
    and :class:`TrainConfig`."""
    from phasewatch import phenomena

    out: dict[str, type] = {}
    for cls in (phenomena.get(phenomenon).config_cls, TrainConfig):
        hints = typing.get_type_hints(cls)
        out.update({f.name: hints[f.name] for f in dataclasses.fields(cls)})
    return out


_TYPE_WORDS = {int: "integers", float: "numbers", bool: "true or false", str: "text"}
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def coerce(name: str, typ: type, raw: Any, where: str) -> Any:
    """``raw`` (text from the command line, or a JSON/YAML value) as a value of ``typ``.

    Raises:
        ConfigError: naming ``where``, the field, the value and the allowed type.
    """
    allowed = _TYPE_WORDS.get(typ, typ.__name__)
    bad = ConfigError(f"{where} {name}={raw!r} is invalid; allowed: {allowed}")
    if isinstance(raw, str) and typ is not str:
        text = raw.strip()
        try:
            if typ is bool:
                return _BOOLS[text.lower()]
            return typ(text)
        except (KeyError, ValueError):
            raise bad from None
    ok = {
        bool: isinstance(raw, bool),
        int: isinstance(raw, int) and not isinstance(raw, bool),
        float: isinstance(raw, int | float) and not isinstance(raw, bool),
        str: isinstance(raw, str),
    }.get(typ, False)
    if not ok:
        raise bad
    return float(raw) if typ is float else raw


def _check_field(name: str, types: dict[str, type], where: str) -> None:
    if name == "seed":
        raise ConfigError(f"{where} seed: give seeds with --seeds (e.g. 0:32), not as a field")
    if name not in types:
        raise ConfigError(f"unknown field {name!r} in {where}; allowed: {', '.join(sorted(types))}")


def parse_seeds(raw: Any) -> tuple[int, ...]:
    """``"0:32"`` (0..31), ``"0,3,7"``, ``5`` or a list of integers -> sorted unique seeds.

    Raises:
        ConfigError: on anything else, or a negative seed.
    """
    allowed = "A:B (A..B-1), a comma list (0,3,7), or one integer >= 0"
    try:
        if isinstance(raw, str) and ":" in raw:
            a, b = (int(x) for x in raw.split(":"))
            seeds = list(range(a, b))
        elif isinstance(raw, str):
            seeds = [int(x) for x in raw.split(",") if x.strip()]
        elif isinstance(raw, int) and not isinstance(raw, bool):
            seeds = [raw]
        elif isinstance(raw, list) and all(
            isinstance(s, int) and not isinstance(s, bool) for s in raw
        ):
            seeds = list(raw)
        else:
            raise ValueError
    except ValueError:
        seeds = []
    require(bool(seeds) and min(seeds) >= 0, "--seeds", allowed, raw)
    return tuple(sorted(set(seeds)))


def parse_assignments(entries: list[str], where: str) -> dict[str, str]:
    """``["lr=1e-3", ...]`` -> ``{"lr": "1e-3"}``; :class:`ConfigError` on a missing ``=``."""
    out = {}
    for e in entries:
        name, eq, value = e.partition("=")
        require(bool(eq and name.strip()), where, "field=value entries", e)
        out[name.strip()] = value
    return out


def typed_grid(raw: dict[str, Any], types: dict[str, type]) -> dict[str, tuple[Any, ...]]:
    """Grid values (comma-separated text or lists) checked against the field types."""
    grid = {}
    for name in sorted(raw):
        _check_field(name, types, "--grid")
        values = raw[name]
        if isinstance(values, str):
            values = [v for v in values.split(",") if v.strip()]
        elif not isinstance(values, list):
            values = [values]
        require(bool(values), f"--grid {name}", "one or more comma-separated values", values)
        typed = tuple(coerce(name, types[name], v, "--grid") for v in values)
        require(len(set(typed)) == len(typed), f"--grid {name}", "distinct values", values)
        grid[name] = typed
    return grid


def build_spec(data: dict[str, Any]) -> SweepSpec:
    """A validated :class:`SweepSpec` from a dict (spec file and/or command line).

    Raises:
        ConfigError: on an unknown key, phenomenon, preset, field, or a bad value; each
            member's config is built, so invalid values (``train_frac=1.5``) fail here.
    """
    unknown = sorted(set(data) - set(SPEC_KEYS))
    if unknown:
        raise ConfigError(f"unknown sweep key(s) {unknown}; allowed: {', '.join(SPEC_KEYS)}")
    from phasewatch import phenomena

    require("phenomenon" in data, "phenomenon", ", ".join(phenomena.names()), None)
    phen = phenomena.get(data["phenomenon"])
    preset = data.get("preset") or phen.default_preset
    require_choice("preset", preset, sorted(phen.presets))
    types = field_types(phen.name)
    fixed = {}
    for name, raw in sorted((data.get("set") or {}).items()):
        _check_field(name, types, "--set")
        fixed[name] = coerce(name, types[name], raw, "--set")
    fixed.setdefault("threads", 1)
    executor = data.get("executor") or "local"
    require_choice("--executor", executor, EXECUTORS)
    strategy = data.get("strategy") or "auto"
    require_choice("--strategy", strategy, STRATEGIES)
    workers = coerce("workers", int, data.get("workers") or 0, "--workers")
    require(workers >= 0, "--workers", "an integer >= 0 (0 = the cores available)", workers)
    report = data.get("report", False)
    require(isinstance(report, bool), "report", "true or false", report)
    spec = SweepSpec(
        phenomenon=phen.name,
        preset=preset,
        seeds=parse_seeds(data.get("seeds", "0")),
        grid=typed_grid(data.get("grid") or {}, types),
        fixed=fixed,
        executor=executor,
        workers=workers,
        address=data.get("address"),
        strategy=strategy,
        report=report,
    )
    members(spec, Path("."))  # validates every member's config
    return spec


def load_spec_file(path: str | Path) -> dict[str, Any]:
    """A sweep spec from a YAML or JSON file (the keys of :data:`SPEC_KEYS`).

    Raises:
        ConfigError: if the file is missing, unparsable or not a mapping.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except OSError as e:
        raise ConfigError(f"--spec {path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"--spec {path}: not YAML/JSON ({str(e).splitlines()[0]})") from None
    require(isinstance(data, dict), f"--spec {path}", "a mapping of sweep keys", type(data))
    return data


# ---- members ----------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    return repr(v) if isinstance(v, float) else str(v)


def member_name(point: dict[str, Any], seed: int) -> str:
    """The member's directory relative to the sweep: ``a=1,b=0.3/s7`` (``s7`` without grid)."""
    cell = ",".join(f"{k}={_fmt(point[k])}" for k in sorted(point))
    cell = re.sub(r"[^A-Za-z0-9._+=,-]", "_", cell)
    return f"{cell}/s{seed}" if cell else f"s{seed}"


def members(spec: SweepSpec, out: str | Path) -> list[Member]:
    """Every member of ``spec`` under sweep directory ``out``, grid points in order, then seeds.

    Raises:
        ConfigError: if a member's config is invalid or two members get the same name.
    """
    from phasewatch.api import resolve_config

    names = list(spec.grid)
    found: list[Member] = []
    for values in itertools.product(*(spec.grid[n] for n in names)):
        point = dict(zip(names, values))
        overrides = {**spec.fixed, **point}
        for seed in spec.seeds:
            cfg = resolve_config(spec.phenomenon, spec.preset, {**overrides, "seed": seed})
            name = member_name(point, seed)
            found.append(Member(name, Path(out) / name, cfg))
    dup = {m.name for m in found if sum(x.name == m.name for x in found) > 1}
    require(not dup, "--grid", "values whose directory names differ", sorted(dup))
    return found


def write_spec(out: Path, spec: SweepSpec, plan: dict[str, Any] | None) -> None:
    """Write ``<out>/sweep.json`` atomically: format version, ``spec`` and ``plan`` (the
    training plan of :func:`phasewatch.sweep.plan.plan`, or None before one is made).

    Raises:
        OSError: if ``out`` is missing or not writable.
    """
    from phasewatch.store import atomic

    atomic.write_json(out / SPEC_FILE, {"version": 1, **spec.to_json(), "plan": plan})


def read_spec(out: str | Path) -> tuple[SweepSpec, dict[str, Any] | None]:
    """The spec and the recorded training plan of sweep directory ``out``.

    Raises:
        StoreError: if ``out`` has no readable ``sweep.json``.
    """
    f = Path(out) / SPEC_FILE
    try:
        data = json.loads(f.read_text())
    except FileNotFoundError:
        raise StoreError(f"{out}: no {SPEC_FILE}; not a sweep directory") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"{f}: corrupted ({e})") from None
    plan = data.pop("plan", None)
    data.pop("version", None)
    return build_spec(data), plan
