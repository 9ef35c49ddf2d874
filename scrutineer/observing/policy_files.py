"""A host's policy files (robots.txt, Spawning's ai.txt, TDMRep's ``/.well-known/tdmrep.json``, and
the RSL licences a robots.txt or a response names), as the fetcher read them, and the workspace's
cache of them.

Each origin's files are fetched once per ``fetch.policy_ttl`` seconds (default one day: RFC 9309
§2.4 asks crawlers not to use a cached robots.txt for longer than 24 hours) by every shard task and
run of a workspace: a :class:`PolicyCache` keeps the latest read of each under
``<workspace>/policy_files/``, one small JSON file per origin and file, written atomically. Within
one fetcher, every request waiting on an origin's file shares one load
(:meth:`scrutineer.observing.fetch.Fetcher.policy_file`). Shard tasks running at the same moment may each
load an origin none of them has cached yet: at most once per task.

A read that could not tell what the origin holds (a timeout, a connection failure, 5xx, a redirect
refused by the SSRF guard …) has status ``transient`` and an ``error`` saying why: it is a
per-host status, recorded with the content observation like any read, but never cached, so the
next shard task or run reads the file again (and ``recheck`` re-checks the URLs of its origin:
:func:`scrutineer.flows.shard.due_urls`). It is never taken as a reservation nor, for robots.txt, as a block.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from scrutineer.core.files import temporary_sibling

#: Policy file name -> its path on an origin.
POLICY_PATHS = {"robots.txt": "/robots.txt", "ai.txt": "/ai.txt", "tdmrep.json": "/.well-known/tdmrep.json"}
#: The name of what the content stage reads to get the RSL licences a robots.txt or a response names
#: (:mod:`scrutineer.observing.optouts.rsl`); each licence read is the policy file ``rsl:<its URL>``
#: of the licence URL's origin.
RSL = "rsl"
LICENCE_PREFIX = "rsl:"

#: The most of a policy file that is read, in bytes (and, by the readers, in characters): RFC 9309
#: §2.5 asks a crawler to parse at least the first 500 KiB of a robots.txt, and lets it stop there.
MAX_BYTES = 500 * 1024
#: The files read as lines, whose first ``MAX_BYTES`` are read when they are larger (to the last
#: whole line); a larger ``tdmrep.json`` (one JSON value) cannot be read in part and is ``too_large``.
READ_IN_PART = ("robots.txt", "ai.txt")


def policy_url(origin: str, name: str) -> str:
    """The URL of policy file ``name`` of ``origin``: a :data:`POLICY_PATHS` path, or the URL a
    licence's name holds (``rsl:<URL>``)."""
    return name.removeprefix(LICENCE_PREFIX) if name.startswith(LICENCE_PREFIX) else origin + POLICY_PATHS[name]


_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]*")


def origin(url: str | None) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, host lowercased and a default port left out
    (RFC 6454 §4); None for anything else (another scheme, credentials, a bad port). Parsed once per distinct ``scheme://authority`` (the images of a host share it)."""
    prefix = _AUTHORITY.match(url or "")
    return _origin(prefix.group() if prefix else url or "")


@lru_cache(maxsize=1 << 16)
def _origin(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host or "@" in parts.netloc:
        return None
    host = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


@dataclass(frozen=True)
class PolicyFile:
    """One read of one policy file of an origin (``scheme://host[:port]``).

    ``status`` is the fetch status class (:mod:`scrutineer.observing.fetch`): ``alive`` (2xx), a 4xx's
    class, ``too_large`` (a tdmrep.json over :data:`MAX_BYTES`), or ``transient`` (unreadable:
    see the module); ``text`` the body decoded as UTF-8 (errors replaced) when it was served (2xx),
    else None; ``sha256`` that of the body as read (the first :data:`MAX_BYTES` to a line break, for
    a larger file of :data:`READ_IN_PART`, ``error`` saying so); ``bytes`` its length;
    ``fetched_at`` when the read started (UTC).
    """

    origin: str
    name: str
    url: str
    fetched_at: datetime
    status: str
    http_status: int | None = None
    content_type: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    text: str | None = None
    error: str | None = None

    @property
    def served(self) -> str | None:
        """The text, if the origin served the file: a 2xx that is not an HTML page (a site
        answering every path with its home page has no such file)."""
        if self.text is None or "html" in (self.content_type or "").lower():
            return None
        return self.text

    def row(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, row: dict) -> PolicyFile:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


def policy_file(origin: str, name: str, fetched_at: datetime, status: str, body: bytes | None = None, **fields) -> PolicyFile:
    """A :class:`PolicyFile` from what a fetch returned (``body`` only for a 2xx)."""
    digest = {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body), "text": body.decode("utf-8", errors="replace")} if body is not None else {}
    return PolicyFile(origin, name, policy_url(origin, name), fetched_at, status, **fields, **digest)


class PolicyCache:
    """The workspace's latest read of each origin's policy files.

    Args:
        root: the cache directory (``<workspace>/policy_files``).
        ttl: seconds a read stays fresh.
    """

    def __init__(self, root: Path, ttl: float) -> None:
        self.root, self.ttl = root, timedelta(seconds=ttl)

    def _path(self, origin: str, name: str) -> Path:
        key = hashlib.sha256(f"{origin} {name}".encode()).hexdigest()
        return self.root / key[:2] / f"{key[2:32]}.json"

    def get(self, origin: str, name: str, now: datetime | None = None) -> PolicyFile | None:
        """The cached read, if one was made less than ``ttl`` seconds before ``now``."""
        try:
            row = json.loads(self._path(origin, name).read_text())
        except (OSError, ValueError):
            return None
        row["fetched_at"] = datetime.fromisoformat(row["fetched_at"])
        if (now or datetime.now(UTC)) - row["fetched_at"] >= self.ttl or row["status"] == "transient":
            return None
        return PolicyFile.of(row)

    def put(self, read: PolicyFile) -> None:
        """Keep ``read`` (a temporary file renamed over the old one: readers see one or the other),
        unless it is ``transient``: that one is read again next time."""
        if read.status == "transient":
            return
        path = self._path(read.origin, read.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_sibling(path)
        tmp.write_text(json.dumps(read.row(), default=str))
        os.replace(tmp, path)
