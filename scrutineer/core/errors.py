"""Scrutineer's exceptions, and what each makes a run do.

==========================  ============================================  ====================================
error                       raised when                                   what the run does
==========================  ============================================  ====================================
:class:`ConfigError`        the config, or a file it names (a bank), is   aborts before any shard is read;
                            wrong                                         the CLI exits 1
:class:`WorkspaceError`     the workspace cannot serve the command:       aborts before it reads or writes
                            another process holds its store, it is not    anything; the CLI exits 1
                            a directory, its store is not a DuckDB
                            database, no scan has finished in it
:class:`ShardError`         one shard cannot be read or judged (corrupt   that shard fails and is recorded in
                            file, malformed row, observations missing     ``shards``; the run goes on and ends
                            for a rematch)                                ``partial``; the CLI exits 3
:class:`NetworkDownError`   the fetcher's circuit breaker opened          that shard ends ``inconclusive``:
                                                                          nothing of its content stage is
                                                                          kept, a rerun checks it again; the
                                                                          run ends ``inconclusive``; exit 3
==========================  ============================================  ====================================

Per-row problems (an unparsable licence, a missing URL, a dead link, an image that does not
decode) are never exceptions: they are findings or fetch statuses. Any other exception inside a
shard task fails that shard alone, like a :class:`ShardError`. Retrying a task is left to the
engine running it (a shard lost with its process is simply run again: its outputs are atomic).
"""


class ScrutineerError(Exception):
    """Base class of every error Scrutineer raises on purpose."""


class ConfigError(ScrutineerError):
    """The configuration or a file it names is invalid; the run must not start."""


class WorkspaceError(ScrutineerError):
    """The workspace cannot serve the command (held by another process, not a directory, no
    finished scan)."""


class ShardError(ScrutineerError):
    """One shard failed; the message names the file (and the row, where known)."""


class NetworkDownError(ShardError):
    """The fetcher's circuit breaker opened: the shard's link checks are inconclusive, nothing
    from its content stage is stored, and a rerun checks it again. The run ends ``inconclusive``."""
