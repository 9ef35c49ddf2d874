"""The workspace layout: every path in a workspace is named in scrutineer/core/layout.py alone, and
the names are those the README and the contract document."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from scrutineer.core.layout import Layout

ROOT = Path(__file__).resolve().parent.parent
#: The folders of production code (the installed packages).
PACKAGES = ["scrutineer", "flows", "crowd", "reports", "detectors", "cli"]
#: Names of files in a workspace (as string constants of their own).
FILES = {"scrutineer.duckdb", "review.duckdb", "review-search.sqlite", "crowd.sqlite", ".duckdb_tmp", Layout.ROWS, Layout.CONTENT, Layout.FETCHES,
         Layout.POLICY_FILES, Layout.STATS, Layout.FINDINGS, Layout.SIGNATURES, Layout.MANIFEST, Layout.REMOVED}
#: Names of the workspace's folders (as the right operand of ``/``: they are table names and JSON keys too).
FOLDERS = {"observations", "judgements", "banks", "policy_files", "releases", "reports", "takedown", "summary"}
#: Names spelled for another folder than a workspace: the demo dataset's bank files, beside its config.
ELSEWHERE = {("scrutineer/testing/demo.py", "banks")}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def spelled(path: Path) -> list[str]:
    """The workspace names ``path`` spells in code (docstrings and comments left out)."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = _docstrings(tree)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            names += [n for n in FILES if node.value == n or node.value.startswith(n + "*")]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant):
            names += [n for n in FOLDERS if node.right.value == n]
    return names


def test_every_workspace_path_is_named_in_the_layout_alone():
    where: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = str(path.relative_to(ROOT))
            for name in spelled(path):
                if (module, name) not in ELSEWHERE:
                    where.setdefault(name, []).append(module)
    assert set(where) == FILES | FOLDERS, "the layout names them all"
    assert {name: files for name, files in where.items() if files != ["scrutineer/core/layout.py"]} == {}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (lambda lo: lo.store, "scrutineer.duckdb"),
        (lambda lo: lo.snapshot, "review.duckdb"),
        (lambda lo: lo.search_index, "review-search.sqlite"),
        (lambda lo: lo.crowd_store, "crowd.sqlite"),
        (lambda lo: lo.observation("ab12") / Layout.ROWS, "observations/ab12/rows.parquet"),
        (lambda lo: lo.judgement("cd34") / Layout.SIGNATURES, "judgements/cd34/signatures.parquet"),
        (lambda lo: lo.bank_entries("ef56"), "banks/ef56.parquet"),
        (lambda lo: lo.release("RE-d-v") / Layout.MANIFEST, "releases/RE-d-v/manifest.json"),
        (lambda lo: lo.report("run"), "reports/run.html"),
        (lambda lo: lo.report_findings("run"), "reports/run-findings.csv"),
        (lambda lo: lo.takedown_json("d"), "takedown/d.json"),
        (lambda lo: lo.policy_files, "policy_files"),
    ],
)
def test_the_layout_names_the_documented_paths(tmp_path, path, expected):
    assert path(Layout(tmp_path)) == tmp_path / expected


def test_the_crowd_stores_files_are_the_database_and_those_beside_it(tmp_path):
    for name in ("crowd.sqlite", "crowd.sqlite-wal", "crowd.sqlite-writers.lock", "review.duckdb"):
        (tmp_path / name).touch()
    assert [p.name for p in Layout(tmp_path).crowd_store_files()] == ["crowd.sqlite", "crowd.sqlite-wal", "crowd.sqlite-writers.lock"]
