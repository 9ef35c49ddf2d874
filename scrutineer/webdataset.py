"""Images of an img2dataset webdataset shard, read from its tar in memory (no HTTP).

img2dataset writes, per shard, ``NNNNN.tar`` (members ``<key>.jpg|png|webp`` with ``<key>.txt``
and ``<key>.json`` beside each image) and ``NNNNN.parquet`` (one row per input sample: ``url``,
``key``, ``caption``, ``status``, ``error_message``, ...; failed samples have no tar members).
Scrutineer reads the parquet as the shard's rows and looks each row's ``key`` up in the tar; the
bytes go straight to the hashers and are never written anywhere.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from scrutineer.errors import ShardError
from scrutineer.files import file_sha256

#: Image member suffixes img2dataset writes (its ``output_format`` encodings).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def tar_path(parquet: str | Path) -> Path:
    """The tar holding the images of an img2dataset parquet shard: same directory, same stem."""
    return Path(parquet).with_suffix(".tar")


def tar_sha256(parquet: str | Path) -> str:
    """sha256 (hex) of the tar beside an img2dataset parquet shard.

    Raises:
        ShardError: the tar is missing or unreadable (naming it).
    """
    path = tar_path(parquet)
    try:
        return file_sha256(path)
    except OSError as e:
        raise ShardError(f"{path}: cannot read the webdataset tar: {type(e).__name__}: {e}") from None


class TarImages:
    """Random access to the image members of one tar, by sample key.

    Opening reads the member headers only (one seek per member); :meth:`read` reads one member.

    Raises:
        ShardError: the tar is missing, unreadable, or holds two images for one key (naming the
            tar and the member).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._tar = tarfile.open(self.path, "r:")
            members = self._tar.getmembers()
        except (OSError, tarfile.TarError) as e:
            raise ShardError(f"{self.path}: cannot read the webdataset tar: {type(e).__name__}: {e}") from None
        self._images: dict[str, tarfile.TarInfo] = {}
        for m in members:
            name = m.name.rsplit("/", 1)[-1]
            key, dot, suffix = name.partition(".")
            if not m.isfile() or not dot or "." + suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if key in self._images:
                raise ShardError(f"{self.path}: member {m.name}: a second image for key {key!r}")
            self._images[key] = m

    def __enter__(self) -> TarImages:
        return self

    def __exit__(self, *exc) -> None:
        self._tar.close()

    def __len__(self) -> int:
        return len(self._images)

    def read(self, key: str) -> bytes | None:
        """The bytes of ``key``'s image member, or None when the tar has none (a failed download).

        Raises:
            ShardError: the member cannot be read (truncated tar).
        """
        member = self._images.get(key)
        if member is None:
            return None
        try:
            f = self._tar.extractfile(member)
            body = f.read() if f else None
        except (OSError, tarfile.TarError) as e:
            raise ShardError(f"{self.path}: member {member.name}: {type(e).__name__}: {e}") from None
        if body is None or len(body) != member.size:
            raise ShardError(f"{self.path}: member {member.name}: truncated")
        return body
