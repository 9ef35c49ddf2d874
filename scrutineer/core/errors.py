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

A feature whose optional dependencies are missing (the review app, the Dask runner, C2PA) raises
:class:`MissingExtraError`, a :class:`ConfigError`, before it starts.

Per-row problems (an unparsable licence, a missing URL, a dead link, an image that does not
decode) are never exceptions: they are findings or fetch statuses. Any other exception inside a
shard task fails that shard alone, like a :class:`ShardError`. Retrying a task is left to the
engine running it (a shard lost with its process is simply run again: its outputs are atomic).

The crowd's errors refuse one request of the review app or one command (``users``, ``flags
import``, ``sync``), never a scan: :class:`CrowdError` (invalid input) and its kinds
:class:`NotSignedIn`, :class:`NotAllowed`, :class:`NotFound`, :class:`RateLimited`,
:class:`ClaimHeld`, :class:`NotPending`, :class:`AlreadyDecided`, :class:`CrowdStoreError` and :class:`AppStopping`. The review app answers each kind with its HTTP
status, mapped in one table (:data:`scrutineer.crowd.api.HTTP_STATUS`); the CLI exits 1.
"""

from __future__ import annotations

from datetime import datetime


class ScrutineerError(Exception):
    """Base class of every error Scrutineer raises on purpose."""


class ConfigError(ScrutineerError):
    """The configuration or a file it names is invalid; the run must not start."""


class MissingExtraError(ConfigError):
    """A feature the config or the command asks for needs an extra of the distribution that is not
    installed; the message names the extra and the ``pip install`` that adds it
    (:func:`scrutineer.core.extras.require`)."""


class ReleaseError(ConfigError):
    """The release cannot be built (unknown variant, no finished scan, a partial scan, a shard
    changed since, restricted rows too large a share of the anonymity set, an entry held for review:
    :class:`HeldError`); the CLI exits 1."""


class HeldError(ReleaseError):
    """A release refused while the flood guard holds a bank entry of its run, or a crowd category,
    undecided (:mod:`scrutineer.core.flood`); the message names each and the commands that decide
    it. The CLI exits 1."""


class WorkspaceError(ScrutineerError):
    """The workspace cannot serve the command (held by another process, not a directory, no
    finished scan)."""


class ShardError(ScrutineerError):
    """One shard failed; the message names the file (and the row, where known)."""


class NetworkDownError(ShardError):
    """The fetcher's circuit breaker opened: the shard's link checks are inconclusive, nothing
    from its content stage is stored, and a rerun checks it again. The run ends ``inconclusive``."""


class CrowdError(ScrutineerError):
    """A crowd request that cannot be done as asked: an unknown role, category, decision, reason
    or change, a bad account name, a name taken, a flags file with bad rows. Its subclasses are the
    other kinds of refusal."""


class NotSignedIn(CrowdError):
    """A review-app request carries no valid API token or session."""


class NotAllowed(CrowdError):
    """The account may not do this: its role, a flag it reported itself, a restricted flag's
    image, a disabled account."""


class NotFound(CrowdError):
    """No such flag, account, or sample in the latest scan (or none the account may see)."""


class RateLimited(CrowdError):
    """An account submitted more flags than ``crowd.rate_limit`` allows, or an account name or a
    client address failed to sign in more often than ``crowd.failed_logins_per_account`` or
    ``crowd.failures_per_address`` allow; ``retry_after`` is in whole seconds (the ``Retry-After``
    header)."""

    def __init__(self, retry_after: int, what: str = "too many flags") -> None:
        super().__init__(f"{what}: try again in {retry_after} s")
        self.retry_after = retry_after


class ClaimHeld(CrowdError):
    """Another reviewer holds the flag's claim (opening a flag claims it for
    ``crowd.claim_minutes``): it cannot be decided or claimed until they decide it or the claim
    runs out. ``by`` names them, ``until`` is when it runs out (UTC)."""

    def __init__(self, flag_id: int, by: str, until: datetime) -> None:
        super().__init__(f"flag {flag_id} is being reviewed by {by} until {until:%H:%M} UTC")
        self.by, self.until = by, until


class NotPending(CrowdError):
    """A flag that is no longer pending was to be decided as pending (a bulk reject)."""


class AlreadyDecided(CrowdError):
    """A hold of the flood guard (a bank entry, a crowd category) was decided already: a decision
    is final (:mod:`scrutineer.crowd.holds`)."""


class CrowdStoreError(CrowdError):
    """The crowd store cannot be opened or created."""


class AppStopping(CrowdError):
    """The review app is stopping: a flag submitted now would never be written."""


class RefusedAddress(OSError):
    """A host resolved to an address the fetcher's SSRF guard refuses (``fetch.allow_private_networks``,
    ``fetch.allowed_networks``). An ``OSError``, so the HTTP client reports it as a failed
    connection; the fetcher records the URL ``blocked``, never dead."""
