"""The documentation's commands match the CLI: every ``phasewatch`` command written in a
``bash`` block of the README or the docs names an existing command, and every option it
passes exists (so a renamed flag breaks this test, not a reader's copy-paste); the README
stays a short start page; every notebook and runnable block the docs rely on exists."""

from __future__ import annotations

import functools
import re
import shlex
from pathlib import Path

import pytest
import typer.main

from phasewatch.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)


def bash_blocks(page: Path) -> list[str]:
    """The bodies of the ```bash fenced blocks of a Markdown page."""
    return [m[2] for m in FENCE.finditer(page.read_text()) if m[1] in ("bash", "sh", "shell")]


def commands(block: str) -> list[list[str]]:
    """The ``phasewatch ...`` command lines of a shell block as word lists (continuation
    lines joined, comments and ``[optional]`` brackets dropped)."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        line = line.split(" #", 1)[0].strip()
        if line.startswith("HF_HUB_OFFLINE=1 "):
            line = line.split(" ", 1)[1]
        if line.startswith("phasewatch "):
            words = shlex.split(line.replace("[", " ").replace("]", " "))
            out.append(words[1:])
    return out


@functools.cache
def root_command():
    """The click command of the typer app (built once)."""
    return typer.main.get_command(app)


def check(words: list[str]) -> str | None:
    """None if ``phasewatch <words>`` names a command and its options; else the problem."""
    cmd = root_command()
    path = ["phasewatch"]
    rest = list(words)
    while rest and hasattr(cmd, "get_command") and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = cmd.get_command(typer.Context(cmd), name)  # lazy groups load it here
        if sub is None:
            return f"{' '.join(path)}: no command {name!r}"
        cmd, path = sub, [*path, name]
    if hasattr(cmd, "get_command") and not cmd.invoke_without_command and "--help" not in rest:
        return f"{' '.join(path)}: a group, not a command"
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    if path == ["phasewatch", "sweep"]:
        known |= {"--grid", "--set"}  # parsed from the extra arguments (cli/sweep.py)
    for w in rest:
        if w.startswith("-") and not re.fullmatch(r"-?\d[\d.e+-]*", w):
            flag = w.split("=", 1)[0]
            if flag not in known:
                return f"{' '.join(path)}: no option {flag}"
    return None


CASES = [
    pytest.param(words, id=f"{page.relative_to(ROOT)}:{' '.join(words)[:60]}")
    for page in PAGES
    for block in bash_blocks(page)
    for words in commands(block)
]


def test_the_docs_show_commands():
    assert len(CASES) > 60  # the pages above hold that many commands; none was lost


@pytest.mark.parametrize("words", CASES)
def test_every_documented_command_exists(words):
    assert check(words) is None, check(words)


def test_the_checker_catches_a_wrong_command_and_option():
    assert check(["runs", "ls", "runs/", "--where", "x"]) is None
    assert "no option --wher" in check(["runs", "ls", "runs/", "--wher", "x"])
    assert "no command 'rnu'" in check(["rnu", "grokking"])
    assert "no option --pp" in check(["run", "grokking", "--pp", "97"])


def test_readme_is_a_short_start_page_with_the_two_commands_first():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 150
    first = bash_blocks(ROOT / "README.md")[0].splitlines()
    assert [line.split()[:2] for line in first[:2]] == [["make", "run"], ["make", "test"]]
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_every_notebook_in_the_nav_exists_and_has_outputs():
    import json

    nav = re.findall(r"notebooks/(\w+)\.ipynb", (ROOT / "mkdocs.yml").read_text())
    books = sorted((ROOT / "examples" / "notebooks").glob("*.ipynb"))
    assert sorted(nav) == [b.stem for b in books] and len(books) >= 5
    for book in books:
        cells = json.loads(book.read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert code and all(c.get("execution_count") for c in code), f"{book.name}: not executed"
