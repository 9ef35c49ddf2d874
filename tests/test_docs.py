"""Docs that stay true (the datasette way: the docs are tested against the code).

docs/architecture.md's module map lists every module, and nothing else; the README's Layout names
every room and wing; the README's command list is exactly the CLI's commands, and its ``python -c``
snippets run.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import typer
from test_architecture import DOC, ROOT, packages, table

from scrutineer.cli.main import app

README = ROOT / "README.md"


def section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    body = text.split(f"\n{heading}\n", 1)[1]
    stop = re.search(rf"^#{{1,{len(level)}}} ", body, re.M)
    return body[: stop.start()] if stop else body


def is_face(path: Path) -> bool:
    """A package's ``__init__.py`` that defines no function or class: it only hands names on."""
    if path.name != "__init__.py":
        return False
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return not any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) for n in tree.body)


def test_the_module_map_lists_every_module_and_nothing_else():
    on_disk = {
        str(path.relative_to(ROOT))
        for folder in packages().values()
        for path in folder.rglob("*.py")
        if not is_face(path)
    }
    listed = [row[0] for row in table("## Module map")]
    assert sorted(listed) == sorted(set(listed)), "a module is listed twice"
    assert set(listed) == on_disk


def test_the_module_map_says_what_each_module_holds():
    assert [row[0] for row in table("## Module map") if len(row) < 2 or not row[1]] == []


def test_the_readme_layout_names_every_room_and_wing():
    layout = section(README.read_text(encoding="utf-8"), "## Layout")
    rooms = {f"{folder.relative_to(ROOT)}/" for folder in packages().values()}
    wings = {f"scrutineer/{row[0]}/" for row in table("## The spine's wings")}
    assert sorted(name for name in rooms | wings if f"`{name}`" not in layout) == []
    assert "docs/architecture.md" in layout


def commands(group, prefix: tuple[str, ...] = ()) -> set[str]:
    """Every command of the CLI as the words that call it (``scan``, ``users add``, ...)."""
    found = set()
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            found |= commands(command, (*prefix, name))
        else:
            found.add(" ".join((*prefix, name)))
    return found


def test_the_readme_command_list_is_the_clis_commands():
    block = section(README.read_text(encoding="utf-8"), "### Commands")
    listed = set()
    for line in re.findall(r"^scrutineer ([a-z][a-z -]*?)(?= [A-Z\[\"'-]|$| +#)", block, re.M):
        listed.add(line.strip())
    assert listed == commands(typer.main.get_command(app))


def test_the_readmes_python_snippets_run():
    """Each ``python -c "…"`` the README gives runs (``from scrutineer import contract`` did not)."""
    snippets = re.findall(r'python -c "([^"]+)"', README.read_text(encoding="utf-8"))
    assert snippets
    for code in snippets:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (code, result.stderr)


def test_the_architecture_doc_names_the_files_it_points_at():
    text = DOC.read_text(encoding="utf-8")
    missing = [p for p in re.findall(r"`((?:cli|crowd|detectors|flows|reports|scrutineer|docs|tests)/[\w/.-]+\.(?:py|md|sql))`", text)
               if not (ROOT / p).exists()]
    assert missing == []


def test_the_architecture_docs_workspace_tree_is_the_layouts():
    doc = ast.get_docstring(ast.parse((ROOT / "scrutineer" / "core" / "layout.py").read_text(encoding="utf-8")))
    drawn = [line.removeprefix("    ") for line in doc.split("::\n", 1)[1].split("\n\n", 1)[0].strip("\n").splitlines()]
    copy = DOC.read_text(encoding="utf-8").split("## Workspace layout", 1)[1].split("```\n", 2)[1].rstrip("\n").splitlines()
    assert copy == drawn
