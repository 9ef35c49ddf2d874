"""img2dataset webdataset shards: the rows are the parquet file's, the images are read from the tar
beside it, in memory (no HTTP).

img2dataset writes, per shard, ``NNNNN.tar`` (members ``<key>.jpg|png|webp`` with ``<key>.txt``
and ``<key>.json`` beside each image) and ``NNNNN.parquet`` (one row per input sample: ``url``,
``key``, ``caption``, ``status``, ``error_message``, ...; failed samples have no tar members).
Scrutineer reads the parquet as the shard's rows, hashes every image of the tar (reading it once,
in member order), and joins the hashes to the rows by ``key``; the bytes go straight to the
hashers and are never written anywhere.

A release writes the parquet files only (as :class:`scrutineer.formats.parquet.Parquet` does):
Scrutineer never writes image bytes, so the tars are not rewritten; the removed keys tell a
maintainer which members to drop.
"""

from __future__ import annotations

import tarfile
from collections import deque
from concurrent.futures import Future
from pathlib import Path

from scrutineer.core.errors import ShardError
from scrutineer.core.files import FileDigest, file_digest
from scrutineer.formats.parquet import Parquet
from scrutineer.observing.hashing import ContentHashes, HashPool

#: Image member suffixes img2dataset writes (its ``output_format`` encodings).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


class WebDataset(Parquet):
    """``format: webdataset``: a shard is img2dataset's ``.parquet`` (``url``, ``key``, ``caption``,
    ``status``, ...), read and released as parquet; its images are in :func:`tar_path`."""

    name = "webdataset"


def tar_path(parquet: str | Path) -> Path:
    """The tar holding the images of an img2dataset parquet shard: same directory, same stem."""
    return Path(parquet).with_suffix(".tar")


def tar_digest(parquet: str | Path, known: dict[str, FileDigest]) -> FileDigest:
    """The digest of the tar beside an img2dataset parquet shard (read only when its stat differs
    from ``known``: :func:`scrutineer.core.files.file_digest`).

    Raises:
        ShardError: the tar is missing or unreadable (naming it).
    """
    path = tar_path(parquet)
    try:
        return file_digest(path, known)
    except OSError as e:
        raise ShardError(f"{path}: cannot read the webdataset tar: {type(e).__name__}: {e}") from None


def hash_tar(path: str | Path, pool: HashPool, window: int, max_bytes: int, max_pixels: int, dihedral: bool = False) -> dict[str, ContentHashes]:
    """Hash every image member of an img2dataset tar in ``pool``, keyed by sample key.

    The tar is read once, as a stream in member order (img2dataset writes members in completion
    order, not key order), so parsing its headers overlaps the hashing; at most ``window`` bodies
    are in memory at once. A member larger than ``max_bytes`` is not read (as an HTTP body would
    not be): its outcome has ``problem`` ``too_large`` and no digest. ``max_pixels`` and
    ``dihedral`` are :func:`scrutineer.observing.hashing.hash_content`'s.

    Returns:
        ``{key: ContentHashes}`` for every ``<key>.jpg|jpeg|png|webp`` member.

    Raises:
        ShardError: the tar is missing, unreadable or truncated, or holds two images for one key
            (naming the tar and, where known, the member).
    """
    path = Path(path)
    pending: deque[tuple[str, Future]] = deque()
    out: dict[str, ContentHashes] = {}
    seen: set[str] = set()
    member = None
    try:
        with tarfile.open(path, "r|") as tar:
            for member in tar:
                key, dot, suffix = member.name.rsplit("/", 1)[-1].partition(".")
                if not member.isfile() or not dot or "." + suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                if key in seen:
                    raise ShardError(f"{path}: member {member.name}: a second image for key {key!r}")
                seen.add(key)
                if member.size > max_bytes:
                    out[key] = ContentHashes(member.size, problem="too_large", error=f"tar member larger than {max_bytes:,} bytes (fetch.max_bytes)")
                    continue
                f = tar.extractfile(member)
                body = f.read() if f else b""
                if len(body) != member.size:
                    raise ShardError(f"{path}: member {member.name}: truncated")
                pending.append((key, pool.submit(body, max_pixels, dihedral)))
                del body
                while len(pending) >= window:
                    done, future = pending.popleft()
                    out[done] = future.result()
    except (OSError, tarfile.TarError) as e:
        where = f"after member {member.name}" if member is not None else "at its start"
        raise ShardError(f"{path}: cannot read the webdataset tar {where}: {type(e).__name__}: {e}") from None
    for done, future in pending:
        out[done] = future.result()
    return out
