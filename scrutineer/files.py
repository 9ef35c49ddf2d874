"""Atomic file output: write under a temporary name, then rename into place.

A temporary name starts with ``.`` and contains ``.tmp-``; a run killed mid-write leaves only such
names behind, which the next run holding the store removes (:func:`sweep_temporaries`).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from pathlib import Path


def file_sha256(path: Path) -> str:
    """sha256 (hex) of a file's bytes (:func:`hashlib.file_digest`, which reads in chunks)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def temporary_sibling(path: Path) -> Path:
    """A fresh temporary name next to ``path``."""
    return path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so readers see the old file or the new one, never half.

    Raises:
        OSError: the write or the rename failed (a full disk, a directory in the way); ``path`` is
            as it was and the temporary is gone.
    """
    tmp = temporary_sibling(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def replace_dir(tmp: Path, out: Path) -> None:
    """Move a finished directory ``tmp`` to ``out``, replacing any previous ``out``."""
    old = None
    if out.exists():
        old = temporary_sibling(out)
        os.rename(out, old)
    os.rename(tmp, out)
    if old is not None:
        shutil.rmtree(old)


def sweep_temporaries(directory: Path) -> None:
    """Delete temporaries a killed run left in ``directory``. Call only while holding the store's
    write lock, so that no other run of this workspace is writing."""
    for tmp in directory.glob(".*.tmp-*"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
