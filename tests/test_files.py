"""Atomic file output, file hashing and the workspace's permissions."""

import hashlib
import os
import stat

import pytest
from conftest import readable_by_others

from scrutineer.core import store
from scrutineer.core.files import file_sha256


def test_file_sha256_matches_hashing_the_whole_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 40_000)  # 10 MB: several of file_digest's reads
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert file_sha256(tmp_path / "empty") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.fixture
def open_umask():
    """A process umask that lets everyone read what is created (022), as a shell's default does;
    the test process's own umask is restored afterwards."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def test_a_new_workspace_and_its_store_are_the_owners_only_whatever_the_umask(tmp_path, open_umask):
    con = store.connect(tmp_path / "work")
    con.execute("CREATE TABLE t AS SELECT 1")
    con.close()
    (tmp_path / "work" / "takedown").mkdir()
    (tmp_path / "work" / "takedown" / "list.csv").write_text("url\n")
    assert stat.S_IMODE((tmp_path / "work").stat().st_mode) == 0o700
    assert readable_by_others(tmp_path / "work") == []


def test_a_workspace_made_before_the_rule_is_made_private_when_opened(tmp_path, open_umask):
    work = tmp_path / "work"
    (work / "banks").mkdir(parents=True)
    (work / "banks" / "entries.parquet").write_bytes(b"PAR1")
    (work / "crowd.sqlite").write_bytes(b"")
    os.chmod(work / "crowd.sqlite", 0o644)
    assert len(readable_by_others(work)) == 4
    store.connect(work).close()
    assert readable_by_others(work) == []
    assert stat.S_IMODE((work / "crowd.sqlite").stat().st_mode) == 0o600


def test_a_store_an_earlier_version_made_reads_its_newer_tables_as_empty(tmp_path):
    """A store made before a table was added (the flood guard's holds, issue 25) is read by a
    read-only command, such as `takedown` or `holds list`, before any write adds the table."""
    con = store.connect(tmp_path / "w")
    con.execute("DROP TABLE holds")
    con.close()
    con = store.connect(tmp_path / "w", read_only=True)
    assert con.execute("SELECT count(*) FROM holds").fetchone() == (0,)
    con.close()
    con = store.connect(tmp_path / "w")  # a writer adds it for good
    con.close()
    con = store.connect(tmp_path / "w", read_only=True)
    assert "holds" in {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
    con.close()
