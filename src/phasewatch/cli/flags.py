"""CLI flags generated from config dataclasses, so that the CLI mirrors the configs.

Each field becomes one option: ``burn_in`` → ``--burn-in``, a bool → ``--x/--no-x``, a
tuple (``tuple[float, ...]``) → comma-separated text (``--epsilons 1e-5,1e-4``); its help
is the field's line in the class docstring's ``Attributes:`` section, and its panel in
``--help`` is the class name. A flag left out is None, so the config's own default (or a
preset's) applies. Values are checked by the dataclass itself: a bad one raises
:class:`~phasewatch.errors.ConfigError` naming the field and the allowed values, which the
CLI's error handler turns into one line and exit code 2.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import typing
from collections.abc import Callable, Sequence
from typing import Any

import typer

from phasewatch.errors import ConfigError

_ROLE = re.compile(r":\w+:`~?([^`]+)`")  # :class:`X` -> X


def field_help(cls: type) -> dict[str, str]:
    """``{field: text}`` from the ``name: text`` lines of a dataclass docstring's Attributes
    section (``a, b: text`` documents both; indented continuation lines are joined; RST
    markup removed)."""
    out: dict[str, str] = {}
    names: list[str] = []
    for line in (cls.__doc__ or "").splitlines():
        if m := re.match(r"^\s{8}([\w, ]+):\s+(.*)$", line):
            names = [n.strip() for n in m.group(1).split(",")]
            out.update({n: m.group(2) for n in names})
        elif re.match(r"^\s{12}\S", line) and names:
            out.update({n: out[n] + " " + line.strip() for n in names})
        else:
            names = []
    return {k: _ROLE.sub(r"\1", v.replace("``", "")) for k, v in out.items()}


def _is_tuple(typ: Any) -> bool:
    return typing.get_origin(typ) is tuple


def _default_text(f: dataclasses.Field) -> str | None:
    value = f.default
    if value is dataclasses.MISSING or value is None or value == ():
        return None
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def config_params(classes: Sequence[type], *, defaults: bool = False) -> list[inspect.Parameter]:
    """One keyword-only typer option per field of ``classes`` (default None: not given).

    Args:
        classes: config dataclasses; their field names must not repeat.
        defaults: append each field's dataclass default to its help (leave it off where a
            preset, not the dataclass, supplies the defaults).
    """
    params = []
    for cls in classes:
        hints, helps = typing.get_type_hints(cls), field_help(cls)
        for f in dataclasses.fields(cls):
            typ = hints[f.name]
            flag = "--" + f.name.replace("_", "-")
            decls = [f"{flag}/--no-{flag[2:]}"] if typ is bool else [flag]
            text = helps.get(f.name, "")
            if _is_tuple(typ):
                typ, text = str, f"{text} Comma-separated."
            if defaults and (default := _default_text(f)) is not None:
                text = f"{text} (default: {default})"
            option = typer.Option(
                None, *decls, help=text, rich_help_panel=cls.__name__, show_default=False
            )
            params.append(
                inspect.Parameter(
                    f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=typ | None
                )
            )
    return params


def config_values(classes: Sequence[type], given: dict[str, Any]) -> dict[str, Any]:
    """The flags of ``classes`` that were given (not None), tuple fields parsed from their
    comma-separated text into tuples of the element type.

    Raises:
        ConfigError: naming the field, on an element that does not parse.
    """
    out = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            value = given.get(f.name)
            if value is None:
                continue
            if _is_tuple(hints[f.name]):
                value = _parse_tuple(f.name, value, typing.get_args(hints[f.name])[0])
            out[f.name] = value
    return out


def _parse_tuple(name: str, text: str, kind: type) -> tuple:
    try:
        return tuple(kind(x) for x in text.split(",") if x.strip())
    except ValueError:
        allowed = f"comma-separated {kind.__name__}s"
        raise ConfigError(f"{name}={text!r} is invalid; allowed: {allowed}") from None


def with_config_flags(*classes: type, defaults: bool = False) -> Callable:
    """Decorator: a typer command taking, beyond its own parameters, one flag per field of
    ``classes`` (:func:`config_params`).

    The decorated function declares a keyword-only ``config`` parameter, which receives
    the flags that were given as ``{field: value}`` (:func:`config_values`).

    Raises:
        TypeError: at decoration, if a field's name is already a parameter.
    """

    def decorate(fn: Callable) -> Callable:
        """``fn`` as a command with the generated flags in its signature."""
        hints = typing.get_type_hints(fn)
        own = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in inspect.signature(fn).parameters.values()
            if p.name != "config"
        ]
        generated = config_params(classes, defaults=defaults)
        names = [p.name for p in generated]
        if clash := sorted({p.name for p in own} & set(names)):
            raise TypeError(f"{fn.__name__}: parameters {clash} are also config fields")

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            """``fn`` with the config flags collected into ``config``."""
            given = {n: kwargs.pop(n) for n in names}
            return fn(**kwargs, config=config_values(classes, given))

        params = own + generated
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
        return command

    return decorate
