"""The house as docs/architecture.md draws it, held against the code's own imports.

The rooms (the top-level packages) and the spine's wings are tables in docs/architecture.md, top
floor first: an import may only go down a floor or stay in its room, no modules import each other
in a loop, the crowd is imported only by the CLI and the deployed flows, and a function-local
import says why it is one. Run ``pytest tests/test_architecture.py`` to see the arrows that break
a rule, with file and line.
"""

from __future__ import annotations

import ast
import re
import tomllib
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
#: The comments a function-local import must carry (issue 24): the dependency is an extra, or
#: importing it at module level costs start-up time that a measurement showed.
WHY_LOCAL = re.compile(r"#\s*(optional|start-up)\b")


def table(heading: str) -> list[list[str]]:
    """The rows of the first Markdown table under ``heading`` in docs/architecture.md, as cells
    with their backticks removed."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]  # the header and the rule


@cache
def packages() -> dict[str, Path]:
    """Import name -> folder of every top-level room (pyproject's package-dir, and the spine)."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {"scrutineer": ROOT / "scrutineer", **{name: ROOT / folder for name, folder in mapping.items()}}


@cache
def modules() -> dict[str, Path]:
    """Every module of the installed namespace: dotted name -> file."""
    found = {}
    for package, folder in packages().items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[0] in {p.rpartition(".")[2] for p in packages() if p != "scrutineer"} and package == "scrutineer":
                continue
            found[".".join([package, *(p for p in parts if p != "__init__")])] = path
    return found


def room(module: str) -> str:
    """``cli``, ``flows``, ... for a top-level room; ``spine.<wing>`` inside the spine."""
    parts = module.split(".")
    if len(parts) > 1 and ".".join(parts[:2]) in packages():
        return parts[1]
    return "spine." + parts[1] if len(parts) > 2 else "spine"


def imports() -> list[tuple[str, str, int]]:
    """(importer, imported module, line) for every import of the namespace, function-local ones too."""
    names = modules()
    out = []
    for module, path in names.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        package = package.rpartition(".")[0]
                    base = f"{package}.{base}" if base else package
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in names else base for a in node.names]
            for target in targets:
                while target and target not in names:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    out.append((module, target, node.lineno))
    return out


def floors() -> dict[str, int]:
    """Room -> floor number, counted from the top: the rooms, then the spine's wings below them."""
    rooms = [row[0] for row in table("## Rooms")]
    wings = [f"spine.{row[0]}" for row in table("## The spine's wings")]
    return {name: n for n, name in enumerate(r for r in rooms if r != "spine")} | {w: len(rooms) + n for n, w in enumerate(wings)}


def where(module: str, line: int) -> str:
    return f"{modules()[module].relative_to(ROOT)}:{line}"


def test_the_rooms_in_the_doc_are_the_packages_and_the_wings_are_the_spines_folders():
    assert {row[2] for row in table("## Rooms")} == set(packages())
    wings = {p.name for p in (ROOT / "scrutineer").iterdir() if (p / "__init__.py").exists()}
    assert {row[0] for row in table("## The spine's wings")} == wings


def test_no_module_stands_loose_in_the_spine_beside_its_wings():
    assert sorted(p.name for p in (ROOT / "scrutineer").glob("*.py")) == ["__init__.py"]


def test_every_import_runs_down_a_floor_or_stays_in_its_room():
    floor = floors()
    up = [f"{where(a, line)} {a} -> {b}" for a, b, line in imports()
          if room(a) != room(b) and "spine" not in (room(a), room(b)) and floor[room(a)] > floor[room(b)]]
    assert up == []


def test_no_modules_import_each_other_in_a_circle():
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for a, b, _ in imports():
        if b != a.rpartition(".")[0]:  # a module importing its own package's face is no loop of code
            graph[a].add(b)
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for nxt in sorted(graph[node]):
            if found := visit(nxt, [*path, node]):
                return found
        done.add(node)
        return None

    circles = [c for m in sorted(graph) if (c := visit(m, []))]
    assert circles == []


def test_only_the_cli_and_the_deployed_flows_import_the_crowd():
    callers = sorted({a for a, b, _ in imports() if room(b) == "crowd" and room(a) != "crowd"})
    assert all(room(a) == "cli" for a in callers if a != "scrutineer.flows.service"), callers


def comment_above(lines: list[str], index: int) -> list[str]:
    """The comment lines right above ``lines[index]``."""
    start = index
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    return lines[start:index]


def test_a_function_local_import_says_why_it_is_one():
    unexplained = []
    for module, path in modules().items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for function in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(function):
                    if isinstance(node, ast.Import | ast.ImportFrom) and not any(
                        WHY_LOCAL.search(line) for line in comment_above(lines, node.lineno - 1) + lines[node.lineno - 1:node.end_lineno]
                    ):
                        unexplained.append(f"{where(module, node.lineno)}: {ast.unparse(node)}")
    assert unexplained == []
