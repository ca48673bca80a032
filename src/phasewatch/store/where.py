"""``runs ls --where``: one boolean expression over the run index's columns, checked token by
token and rewritten with quoted column names; never SQL (:mod:`.index` runs it)."""

from __future__ import annotations

import re

from phasewatch.errors import ConfigError


def ident(name: str) -> str:
    """``name`` as a quoted duckdb identifier."""
    return '"' + name.replace('"', '""') + '"'


# ---- --where: one boolean expression, not SQL ------------------------------------------
# Why a whitelist of tokens rather than duckdb's parser alone: a parser accepts any SQL,
# and telling a harmless expression from a subquery, a table function (read_text, ...) or
# a second statement means walking its syntax tree, whose format changes between duckdb
# versions. Instead every token must be a number, a '...' string, an operator, a column of
# the index (always emitted quoted, and never called), or one of the keywords and
# functions below: no SELECT, FROM, ';', comments or unknown names can get through, so the
# expression can only read the columns of the ``runs`` row. duckdb then binds it inside
# ``SELECT ... FROM runs WHERE (<expr>)`` and it must be boolean. External access is
# disabled and the configuration locked as a second wall.
_KEYWORDS = frozenset(
    "and or not is null true false in between like ilike case when then else end cast as "
    "double float real integer int bigint smallint varchar text boolean bool".split()
)
_FUNCTIONS = frozenset(
    "abs round floor ceil sqrt ln log log10 log2 exp power greatest least coalesce nullif "
    "lower upper length contains starts_with ends_with regexp_matches isnan isinf isfinite "
    "cast".split()
)
_TOKEN = re.compile(
    r"""\s+|(?P<str>'(?:[^']|'')*')|(?P<quoted>"(?:[^"]|"")*")"""
    r"|(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_]\w*)|(?P<op><>|!=|<=|>=|==|\|\||::|[=<>+\-*/%(),])"
)


def where_clause(where: str, columns: list[str]) -> str:
    """``where`` rewritten as a duckdb expression over ``columns`` (quoted), after checking
    that it holds only numbers, '...' strings, operators, parentheses, column names and
    the keywords/functions of :data:`_KEYWORDS` / :data:`_FUNCTIONS`.

    Raises:
        ConfigError: naming the first token that is not allowed, or unbalanced parentheses.
    """
    slashed = sorted((c for c in columns if "/" in c), key=len, reverse=True)
    bare = re.compile("|".join(rf"(?<![\w/]){re.escape(c)}(?![\w/])" for c in slashed) or r"(?!)")
    known = set(columns)
    out: list[tuple[str, str]] = []  # (kind, text)
    pos = 0
    while pos < len(where):
        if m := bare.match(where, pos):
            out.append(("column", m.group()))
        elif m := _TOKEN.match(where, pos):
            kind = m.lastgroup
            text = m.group()
            if kind == "quoted":
                name = text[1:-1].replace('""', '"')
                _require_column(name, known, columns)
                out.append(("column", name))
            elif kind == "name":
                out.append(_name(text, known, columns))
            elif kind is not None:
                out.append((kind, text))
        else:
            bad = where[pos : pos + 12]
            raise ConfigError(
                f"--where: {bad!r} is not allowed; allowed: one boolean expression of columns, "
                "numbers, 'strings', operators (= <> < <= > >= + - * / % || ::), parentheses, "
                f"{', '.join(sorted(_KEYWORDS))} and the functions {', '.join(sorted(_FUNCTIONS))}"
            )
        pos = m.end()
    return _assemble(out, columns)


def _name(text: str, known: set[str], columns: list[str]) -> tuple[str, str]:
    if text in known:
        return ("column", text)
    if text.lower() in _KEYWORDS or text.lower() in _FUNCTIONS:
        return ("keyword", text.lower())
    _require_column(text, known, columns)
    return ("column", text)


def _require_column(name: str, known: set[str], columns: list[str]) -> None:
    if name not in known:
        raise ConfigError(
            f"--where: unknown name {name!r}; allowed: the columns {', '.join(columns)}, "
            f"keywords {', '.join(sorted(_KEYWORDS))} and functions "
            f"{', '.join(sorted(_FUNCTIONS))}"
        )


def _assemble(tokens: list[tuple[str, str]], columns: list[str]) -> str:
    """The tokens joined by spaces (so ``- -`` never becomes a comment), columns quoted;
    a column is never called and a function always is."""
    depth, parts = 0, []
    for i, (kind, text) in enumerate(tokens):
        calls = i + 1 < len(tokens) and tokens[i + 1] == ("op", "(")
        if kind == "column" and calls:
            raise ConfigError(f"--where: {text!r} is a column, not a function")
        if kind == "keyword" and text in _FUNCTIONS - _KEYWORDS and not calls:
            raise ConfigError(f"--where: {text!r} is a function; allowed: {text}(...)")
        depth += {"(": 1, ")": -1}.get(text, 0) if kind == "op" else 0
        if depth < 0:
            break
        parts.append(ident(text) if kind == "column" else text)
    if depth != 0:
        raise ConfigError("--where: unbalanced parentheses; allowed: one boolean expression")
    if not parts:
        raise ConfigError("--where is empty; allowed: one boolean expression of the columns")
    return " ".join(parts)
