"""Atomic file output and file hashing."""

import hashlib

from scrutineer.files import file_sha256


def test_file_sha256_matches_hashing_the_whole_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 40_000)  # 10 MB: several of file_digest's reads
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert file_sha256(tmp_path / "empty") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
