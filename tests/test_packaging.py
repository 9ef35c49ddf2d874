"""Packaging: the wheel installs one import namespace, ``scrutineer``, with every package and data
file; each extra is declared where a feature checks it; a missing extra stops its feature in one line
naming the extra (README "Quick start")."""

import email
import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from conftest import write_config

import scrutineer
from scrutineer.core.extras import DISTRIBUTION, EXTRAS
from scrutineer.observing.optouts import c2pa

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def source_folders() -> dict[str, Path]:
    """Every package the wheel must hold, by its import name, with the folder it is built from."""
    mapped = {name: ROOT / folder for name, folder in SETUPTOOLS["package-dir"].items()}
    folders = {}
    for name in SETUPTOOLS["packages"]:
        parent = next((p for p in sorted(mapped, key=len, reverse=True) if name == p or name.startswith(p + ".")), None)
        folders[name] = mapped[parent] / name[len(parent):].lstrip(".").replace(".", "/") if parent else ROOT / name.replace(".", "/")
    return folders


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel ``pip wheel`` builds from a copy of the project's sources (not in the checkout,
    whose build/ folder a concurrent build would share)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in {f.relative_to(ROOT).parts[0] for f in source_folders().values()}:
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)], check=True, timeout=600)
    (path,) = out.glob("*.whl")
    with zipfile.ZipFile(path) as zf:
        yield zf


def test_the_wheel_installs_only_the_scrutineer_namespace(wheel):
    top = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert top == {"scrutineer", f"scrutineer_audit-{scrutineer.__version__}.dist-info"}


def test_the_wheel_holds_every_package_and_data_file(wheel):
    names = set(wheel.namelist())
    missing = []
    for package, folder in source_folders().items():
        inside = package.replace(".", "/")
        assert (folder / "__init__.py").exists(), f"{package}: no {folder}/__init__.py"
        for path in folder.iterdir():  # a package's modules and data; its subpackages are packages of their own
            if path.is_file() and path.suffix != ".pyc" and f"{inside}/{path.name}" not in names:
                missing.append(f"{inside}/{path.name}")
            if path.is_dir() and path.name != "__pycache__" and not (path / "__init__.py").exists():
                missing += [f"{inside}/{f.relative_to(folder).as_posix()}" for f in path.rglob("*")
                            if f.is_file() and "__pycache__" not in f.parts and f"{inside}/{f.relative_to(folder).as_posix()}" not in names]
    assert missing == []
    # every folder holding an __init__.py is a package the wheel lists (none forgotten in pyproject)
    for top in {f.relative_to(ROOT).parts[0] for f in source_folders().values()}:
        for init in (ROOT / top).rglob("__init__.py"):
            assert init.parent in source_folders().values(), f"{init.parent} is a package pyproject.toml does not list"


def test_the_wheel_names_its_distribution_version_command_and_extras(wheel):
    dist_info = f"scrutineer_audit-{scrutineer.__version__}.dist-info"
    metadata = email.message_from_bytes(wheel.read(f"{dist_info}/METADATA"))
    assert metadata["Name"] == DISTRIBUTION
    assert metadata["Version"] == scrutineer.__version__  # spelled once: pyproject reads scrutineer.__version__
    assert {*EXTRAS, "postgres", "all", "test"} == set(metadata.get_all("Provides-Extra"))
    entry_points = wheel.read(f"{dist_info}/entry_points.txt").decode()
    assert "[console_scripts]\nscrutineer = scrutineer.cli.main:app" in entry_points


def test_all_holds_every_extra_and_test_holds_all():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert set(EXTRAS) <= set(extras)
    assert extras["all"] == [f"{DISTRIBUTION}[{','.join(e for e in extras if e not in ('all', 'test'))}]"]
    assert f"{DISTRIBUTION}[all]" in extras["test"]


def run_cli(*args: str, missing: str) -> subprocess.CompletedProcess:
    """``scrutineer ARGS`` in a fresh interpreter where ``missing`` cannot be imported, as when its
    extra is not installed."""
    code = (f"import sys; sys.modules[{missing!r}] = None; sys.argv = ['scrutineer', *{list(args)!r}]; "
            "from scrutineer.cli.main import app; app()")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_serve_without_the_serve_extra_is_a_one_line_error(tmp_path):
    config = write_config(tmp_path, {"dataset": {"name": "d", "shards": ["d.jsonl"]}, "detectors": {"url_hashlist": {}}})
    result = run_cli("serve", str(config), missing="gunicorn")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: the review app (scrutineer serve) needs the serve extra (gunicorn missing): pip install 'scrutineer-audit[serve]'"
    ], result.stderr


def test_a_dask_runner_without_the_dask_extra_is_a_one_line_error(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"url": "http://x.org/a.jpg"}\n')
    config = write_config(tmp_path, {"dataset": {"name": "d", "shards": ["d.jsonl"]}, "detectors": {"dedup": None},
                                     "runner": {"kind": "dask", "workers": 1}})
    result = run_cli("scan", str(config), missing="prefect_dask")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: the Dask runner (runner: {kind: dask}) needs the dask extra (prefect_dask missing): pip install 'scrutineer-audit[dask]'"
    ], result.stderr
    assert not (tmp_path / "work" / "scrutineer.duckdb").exists()  # stopped before any run was recorded


def test_a_manifest_read_without_the_c2pa_extra_says_so(monkeypatch):
    body = b"\xff\xd8\xff\xe0" + b"c2pa" + bytes(64)  # JPEG magic and the JUMBF label: handed to c2pa
    monkeypatch.setitem(sys.modules, "c2pa", None)
    assert json.loads(c2pa.read_training_mining(body)) == {"error": "c2pa extra not installed"}
    assert c2pa.judge(c2pa.read_training_mining(body)) is None  # no finding from a manifest nobody read
    assert c2pa.read_training_mining(b"\xff\xd8\xff\xe0" + bytes(64)) is None  # no label: no manifest to read


def test_a_postgresql_crowd_store_without_the_postgres_extra_is_a_one_line_error(tmp_path):
    config = write_config(tmp_path, {"dataset": {"name": "d", "shards": ["d.jsonl"]}, "detectors": {"dedup": None},
                                     "crowd": {"database": "postgresql+psycopg://reviewer@127.0.0.1:1/crowd",
                                               "categories": {"copyright": {}}}})
    result = run_cli("users", "list", str(config), missing="psycopg")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: a crowd store on PostgreSQL (crowd: {database: postgresql+psycopg://...}) needs the postgres extra "
        "(psycopg missing): pip install 'scrutineer-audit[postgres]'"
    ], result.stderr


def test_the_optouts_detector_without_the_c2pa_extra_is_a_one_line_error(tmp_path):
    config = write_config(tmp_path, {"dataset": {"name": "d", "shards": ["d.jsonl"]}, "detectors": {"optouts": {}}})
    result = run_cli("scan", str(config), missing="c2pa")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: the optouts detector's C2PA manifests needs the c2pa extra (c2pa missing): pip install 'scrutineer-audit[c2pa]'"
    ], result.stderr
