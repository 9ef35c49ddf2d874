"""Hash banks (hash lists) supplied by hotlines and watchdogs, and their signal types.

A bank file is either plain text, one lowercase hex digest per line (``#`` comments and blank
lines ignored), or a CSV with a ``hash`` column. Signal types and hash strings follow Meta's
Hasher-Matcher-Actioner / python-threatexchange (``signal_type/url_md5.py``, ``md5.py``):
``url_md5`` is the MD5 of a URL normalised by :func:`url_md5_normalize`.

Bank entries are restricted data: they are kept in the store for matching and never written to a
public output; manifests carry only a bank's name, source, version, entry count and file sha256.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from urllib.parse import urlparse

import pyarrow as pa

from scrutineer.config import BankConfig
from scrutineer.errors import ConfigError

#: Hex digest length per signal type (characters).
HEX_LENGTHS = {"url_md5": 32, "md5": 32, "sha1": 40, "sha256": 64, "pdq": 64, "phash": 16}
_HEX = re.compile(r"[0-9a-f]+")


def url_md5_normalize(url: str) -> str:
    """The URL as HMA's ``url_md5`` signal hashes it: lowercased whole, first ``scheme://`` removed.

    This is ``threatexchange.common.normalize_url``: lowercase, ``urlparse``, then drop the first
    occurrence of ``"<scheme>://"`` from ``geturl()`` (which also drops empty ``?``/``#``/``;``).
    A URL ``urlparse`` rejects is lowercased with its leading ``scheme://`` cut.
    """
    url = url.lower()
    try:
        parsed = urlparse(url)
    except ValueError:  # e.g. an unbalanced "[" in the host: HMA cannot parse it either
        return re.sub(URL_MD5_SCHEME_REGEX, "", url, count=1)
    return parsed.geturl().replace(f"{parsed.scheme}://", "", 1)


def url_md5(url: str) -> str:
    """HMA/ThreatExchange ``url_md5`` of a URL: MD5 hex of the UTF-8 normalised URL."""
    return hashlib.md5(url_md5_normalize(url).encode("utf-8")).hexdigest()


#: URLs for which ``lower(url)`` with its leading ``scheme://`` cut is exactly what
#: :func:`url_md5_normalize` returns: printable ASCII only (so every engine lowercases alike), a
#: scheme, no ``#``, ``;``, ``[`` or ``]``, and a query that is absent or non-empty. Other URLs are
#: hashed with :func:`url_md5` itself.
_SIMPLE_CHARS = r"\x21\x22\x24-\x3a\x3c-\x3e\x40-\x5a\x5c\x5e-\x7e"  # printable ASCII but # ; ? [ ]
URL_MD5_SIMPLE_REGEX = rf"^[A-Za-z][A-Za-z0-9+.-]*://[{_SIMPLE_CHARS}]*(\?[{_SIMPLE_CHARS}\x3f]+)?$"
URL_MD5_SCHEME_REGEX = r"^[a-z][a-z0-9+.-]*://"


def validate_hash(signal_type: str, value: str) -> str:
    """Check a hash string for a signal type.

    Returns:
        The value, unchanged.

    Raises:
        ValueError: not lowercase hex of the signal type's length (the message says which).
    """
    want = HEX_LENGTHS[signal_type]
    if len(value) != want or not _HEX.fullmatch(value):
        raise ValueError(f"not a {signal_type} hash: expected {want} lowercase hex characters, got {value[:80]!r}")
    return value


@dataclass(frozen=True)
class Bank:
    """A loaded hash bank: its config, the file's sha256 and its entries (``pa.Array`` of str)."""

    config: BankConfig
    sha256: str
    entries: pa.Array

    def public(self) -> dict:
        """What may appear in public outputs: never the entries."""
        c = self.config
        return {
            "name": c.name,
            "source": c.source,
            "version": c.version,
            "signal_type": c.signal_type,
            "entries": len(self.entries),
            "sha256": self.sha256,
        }


def load_bank(cfg: BankConfig) -> Bank:
    """Read and validate a bank file.

    Raises:
        ConfigError: unreadable file, or an invalid entry (naming the file and line number).
    """
    try:
        raw = cfg.path.read_bytes()
    except OSError as e:
        raise ConfigError(f"bank {cfg.name}: cannot read {cfg.path}: {e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"bank {cfg.name}: {cfg.path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    entries = []
    for line_no, value in _bank_lines(cfg, text):
        try:
            entries.append(validate_hash(cfg.signal_type, value))
        except ValueError as e:
            raise ConfigError(f"bank {cfg.name}: {cfg.path}:{line_no}: {e}") from None
    unique = sorted(set(entries))
    return Bank(cfg, hashlib.sha256(raw).hexdigest(), pa.array(unique, pa.string()))


def _bank_lines(cfg: BankConfig, text: str):
    first = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
    if cfg.path.suffix.lower() == ".csv" or "," in first or first.lower() == "hash":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "hash" not in reader.fieldnames:
            raise ConfigError(f"bank {cfg.name}: {cfg.path}: CSV bank files need a 'hash' column, got {reader.fieldnames}")
        for row in reader:
            yield reader.line_num, (row["hash"] or "").strip()
        return
    for line_no, line in enumerate(text.splitlines(), start=1):
        value = line.strip()
        if value and not value.startswith("#"):
            yield line_no, value


def load_banks(configs: list[BankConfig]) -> list[Bank]:
    """Load every configured bank (see :func:`load_bank`)."""
    return [load_bank(c) for c in configs]
