"""Scrutineer's exceptions, mapped to what the run does about them.

- :class:`ConfigError` — the configuration (or a bank file it names) is wrong. Fatal: the run
  aborts before any shard is read.
- :class:`ShardError` — one shard cannot be read or processed (corrupt file, malformed row).
  That shard fails, the failure is recorded in the ``shards`` table, and the run goes on; the run
  ends ``partial`` (``inconclusive`` when the network went down: :class:`NetworkDownError`).
- :class:`RetryableError` — a transient condition (a file on shared storage briefly missing).
  Left to Prefect's task retries.
- :class:`WorkspaceError` — the workspace's store cannot be opened: another process holds it
  (DuckDB admits one process per database file while one writes), the workspace is not a
  directory, or its ``scrutineer.duckdb`` is not a DuckDB database. Fatal like
  :class:`ConfigError`: the command stops before it reads or writes anything.

Per-row problems (an unparsable licence, a missing URL) are never exceptions: they are findings.
"""


class ScrutineerError(Exception):
    """Base class of every error Scrutineer raises on purpose."""


class ConfigError(ScrutineerError):
    """The configuration or a file it names is invalid; the run must not start."""


class ShardError(ScrutineerError):
    """One shard failed; the message names the file (and the row, where known)."""


class NetworkDownError(ShardError):
    """The fetcher's circuit breaker opened: the shard's link checks are inconclusive, nothing
    from it is stored, and a rerun checks it again. The run ends ``inconclusive``."""


class RetryableError(ScrutineerError):
    """A transient failure worth retrying."""


class WorkspaceError(ScrutineerError):
    """The workspace's store cannot be opened; the message names the workspace and why."""
