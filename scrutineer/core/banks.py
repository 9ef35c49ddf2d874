"""Hash banks (hash lists) supplied by hotlines and watchdogs.

A bank file is either plain text, one hex digest per line (``#`` comments and blank lines
ignored), or a CSV with a ``hash`` column. Each entry is validated and normalised by its
:class:`~scrutineer.matching.signals.SignalType` (lowercase hex of the signal's width, as HMA stores it).
``url_md5`` is the MD5 of a URL normalised by :func:`url_md5_normalize`, as HMA's URL MD5 signal.

Bank entries are restricted data. A run *registers* each bank: the store's ``banks`` table records
its name, source, version, signal type, entry count and file sha256, and its normalised entries
are kept in ``<workspace>/banks/<sha256>.parquet``, where shard tasks on any machine read them.
No public output carries an entry.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from scrutineer.core import store
from scrutineer.core.config import BankConfig
from scrutineer.core.contract import BANKS
from scrutineer.core.errors import ConfigError
from scrutineer.core.files import atomic_write_parquet
from scrutineer.core.layout import Layout
from scrutineer.matching.signals import SignalType, signal_type


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


@dataclass(frozen=True)
class BankRef:
    """A registered bank, as plain values a shard task can carry anywhere: the config's labels and
    the sha256 of the file, which names its entries file in the workspace."""

    name: str
    source: str
    version: str
    signal_type: str
    sha256: str
    entries: int

    @property
    def signal(self) -> SignalType:
        return signal_type(self.signal_type)

    def public(self) -> dict:
        """What may appear in public outputs: never the entries."""
        return {k: getattr(self, k) for k in ("name", "source", "version", "signal_type", "entries", "sha256")}


@dataclass(frozen=True)
class Bank:
    """A loaded bank: its :class:`BankRef` and its entries (``pa.Array`` of normalised hash
    strings, sorted, distinct)."""

    ref: BankRef
    entries: pa.Array


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
    signal = signal_type(cfg.signal_type)
    entries = set()
    for line_no, value in _bank_lines(cfg, text):
        try:
            entries.add(signal.normalize(value))
        except ValueError as e:
            raise ConfigError(f"bank {cfg.name}: {cfg.path}:{line_no}: {e}") from None
    ref = BankRef(cfg.name, cfg.source, cfg.version, cfg.signal_type, hashlib.sha256(raw).hexdigest(), len(entries))
    return Bank(ref, pa.array(sorted(entries), pa.string()))


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


def register(con: duckdb.DuckDBPyConnection, workspace: Path, banks: list[Bank]) -> None:
    """Record each bank in the store's ``banks`` table (once per name and file sha256) and keep its
    entries in the workspace (once per sha256). Call while holding the store's write lock."""
    now = datetime.now(UTC)
    for bank in banks:
        path = Layout(workspace).bank_entries(bank.ref.sha256)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_parquet(pa.table({"hash": bank.entries}), path)
    rows = [{**b.ref.public(), "registered_at": now} for b in banks]
    store.insert(con, BANKS, rows, on_conflict="ignore")


@cache
def registered_entries(path: Path) -> pa.Array:
    """A registered bank's entries, read once per process (the file never changes: it is named by
    the sha256 of the bank file it came from)."""
    return pq.read_table(path).column("hash").combine_chunks()
