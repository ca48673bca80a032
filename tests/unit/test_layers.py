"""The layout of ../shared/DESIGN.md ("Layers"), read from the source with ``ast``.

Every import counts, module-level and inside functions alike. A module may import only
from its own layer or lower ones; neither the modules nor the boxes (top-level
subpackages) may import each other in a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PKG = "phasewatch"

# DESIGN.md "Layers": 0 errors, config, store; 1 models, evals; 2 phenomena, training;
# 3 signals; 4 detect; 5 report; 6 api, then cli, watch, sweep.
LAYERS = {
    "errors": 0,
    "config": 0,
    "store": 0,
    "models": 1,
    "evals": 1,
    "phenomena": 2,
    "training": 2,
    "signals": 3,
    "detect": 4,
    "report": 5,
    "api": 6,
    "cli": 6,
    "watch": 6,
    "sweep": 6,
}
TOP = {"__init__", "__main__"}  # the package itself: may import anything


def module_name(path: Path) -> str:
    parts = path.with_suffix("").relative_to(SRC).parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / PKG).rglob("*.py"))}


def resolve(mod: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(mod: str, path: Path, known: set[str]) -> set[str]:
    """Every phasewatch module ``mod`` imports (``from a import b`` counts ``a.b`` when b is
    a module, else ``a``), wherever the import statement is."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == PKG}
        elif isinstance(node, ast.ImportFrom):
            target = resolve(mod, path, node)
            if target.split(".")[0] != PKG:
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.add(sub if sub in known else target)
    return out - {mod}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports(m, p, known) for m, p in mods.items()}


def box(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_every_box_has_a_layer():
    boxes = {box(m) for m in modules()} - TOP
    assert boxes <= set(LAYERS), f"boxes without a layer: {sorted(boxes - set(LAYERS))}"


def test_no_import_from_a_higher_layer():
    bad = []
    for mod, targets in graph().items():
        if box(mod) in TOP:
            continue
        for t in targets:
            if box(t) not in TOP and LAYERS[box(t)] > LAYERS[box(mod)]:
                bad.append(f"{mod} (layer {LAYERS[box(mod)]}) -> {t} (layer {LAYERS[box(t)]})")
    assert not bad, "imports up the flow:\n" + "\n".join(sorted(bad))


def test_no_module_cycles():
    assert cycles(graph()) == []


def test_no_box_cycles():
    edges: dict[str, set[str]] = {}
    for mod, targets in graph().items():
        edges.setdefault(box(mod), set()).update(box(t) for t in targets if box(t) != box(mod))
    assert cycles(edges) == []


def test_signals_never_import_a_phenomenon_or_the_watcher():
    bad = [
        (m, t)
        for m, ts in graph().items()
        if box(m) == "signals"
        for t in ts
        if box(t) in {"phenomena", "watch", "api"}
    ]
    assert bad == []


@pytest.mark.parametrize(
    "edges, expected",
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": {"a"}, "c": {"c"}}, [["a", "b"]]),
    ],
)
def test_cycle_finder_on_known_graphs(edges, expected):
    assert cycles(edges) == expected


def test_imports_inside_functions_count(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from phasewatch.api import run\n")
    assert imports("phasewatch.store.m", f, {"phasewatch.api"}) == {"phasewatch.api"}
