"""Files: their digests, atomic output, and the workspace's permissions.

Atomic output writes under a temporary name, then renames into place. A temporary name starts with
``.`` and contains ``.tmp-``; a run killed mid-write leaves only such names behind, which the next
run holding the store removes (:func:`sweep_temporaries`). A file's sha256 is remembered with its
stat (:class:`FileDigest`), so an unchanged shard is not read again to be recognised.

Everything in a workspace is restricted: the hash lists, the findings store with its hash matches,
the takedown manifest, the crowd store with its accounts. So a workspace is its owner's only
(:func:`keep_private`): a directory no one else may enter (0700), whose files no one else may read
(0600), whatever the umask the process was started with.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

#: The umask of every Scrutineer process: what it creates is its owner's only (files 0600, directories 0700).
PRIVATE_UMASK = 0o077


def keep_private(workspace: Path | None = None) -> None:
    """Make this process create every file and directory for its owner only from now on (umask
    :data:`PRIVATE_UMASK`), and make ``workspace``, if given, a directory only its owner may enter.

    Every entry point calls it: the command line, the deployed flows, a shard task (which may run
    on a Dask worker), the review app. A workspace made before this rule (mode other than 0700) has
    its directory set to 0700 and its files' group and other permission bits cleared, once.

    Args:
        workspace: the workspace directory, made (with its parents) if missing.

    Raises:
        OSError: ``workspace`` cannot be made or its permissions changed (a file on its path, not
            its owner).
    """
    os.umask(PRIVATE_UMASK)
    if workspace is None:
        return
    workspace.mkdir(mode=0o700, parents=True, exist_ok=True)
    if workspace.stat().st_mode & 0o777 == 0o700:
        return
    for root, dirs, files in os.walk(workspace):
        for name in dirs + files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode & 0o7700)
    os.chmod(workspace, 0o700)


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


def temporaries(directory: Path) -> list[Path]:
    """The temporaries (:func:`temporary_sibling` names) directly in ``directory``."""
    return sorted(directory.glob(".*.tmp-*"))


def sweep_temporaries(directory: Path) -> None:
    """Delete temporaries a killed run left in ``directory``. Call only while holding the store's
    write lock, so that no other run of this workspace is writing."""
    for tmp in temporaries(directory):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def atomic_write_parquet(table, path: Path, **options) -> None:
    """Write an Arrow table as parquet to ``path`` atomically (see :func:`atomic_write_text`)."""
    import pyarrow.parquet as pq  # start-up: ~180 ms at import (python -X importtime), paid by every command that imports this module

    tmp = temporary_sibling(path)
    try:
        pq.write_table(table, tmp, **options)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class FileDigest:
    """A file's sha256 and the stat it was computed at (size in bytes, modification time in
    nanoseconds, inode): while the stat is unchanged, the file is taken as unchanged, the
    heuristic git's index and rsync's quick check use."""

    path: str
    size: int
    mtime_ns: int
    inode: int
    sha256: str


def file_digest(path: str | Path, known: dict[str, FileDigest]) -> FileDigest:
    """The digest of ``path``: ``known[path]`` while the file's stat is unchanged, else its bytes
    hashed afresh.

    Raises:
        OSError: the file cannot be read.
    """
    path = str(path)
    st = os.stat(path)
    seen = known.get(path)
    if seen and (seen.size, seen.mtime_ns, seen.inode) == (st.st_size, st.st_mtime_ns, st.st_ino):
        return seen
    return FileDigest(path, st.st_size, st.st_mtime_ns, st.st_ino, file_sha256(Path(path)))
