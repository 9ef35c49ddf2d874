"""The crowd store's flags and reviews: flagging samples, the reviewers' decisions, the quorum
that confirms a flag, and the audit log of every change.

- A **flag** is one sample under one category (unique together). Each contributor who flags it
  adds one **report** to it (with a note); flagging it again adds nothing.
- A flag's status is ``pending``, ``confirmed`` or ``rejected`` (StopNCII's PendingReview /
  Blocked / NotBlocked). It is confirmed by the config's quorum
  (:class:`~scrutineer.core.config.QuorumConfig`): ``reviewers`` distinct reviewers confirming, or
  ``contributors`` distinct contributor accounts (enabled ones; a reviewer's or maintainer's report
  never counts, so a staff flag waits for another reviewer) reporting it. A reviewer's ``reject``
  rejects it. Every decision carries a reason code from the config (NCMEC's hash sharing requires
  one with every "no") and a note; a reject as :data:`~scrutineer.crowd.tables.DUPLICATE_REASON`
  names the flag it duplicates (GitHub's "close as duplicate of #N"). A reviewer cannot decide a
  flag they reported (four eyes).
- A **claim**: a reviewer who opens a flag they may decide holds it for ``crowd.claim_minutes``
  (Label Studio's task lock), and another reviewer cannot decide it meanwhile
  (:class:`~scrutineer.core.errors.ClaimHeld`); a decision releases it. Claims are working state,
  not decisions: they are not audited.
- The **audit log** records every change: who, when, which flag, from which status to which. It is
  append-only: the database refuses to update or delete its rows (triggers, on SQLite and Postgres:
  :data:`scrutineer.crowd.tables.APPEND_ONLY`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from limits import RateLimitItem

from scrutineer.core.errors import (
    ClaimHeld,
    CrowdError,
    NotAllowed,
    NotFound,
    NotPending,
    RateLimited,
)
from scrutineer.crowd.accounts import Account
from scrutineer.crowd.database import Database, as_utc, audit_row, chunks, now_utc
from scrutineer.crowd.tables import (
    DECISIONS,
    DUPLICATE_REASON,
    accounts,
    audit,
    claims,
    duplicates,
    flags,
    reports,
    reviews,
)
from scrutineer.samples.domains import host_and_domain

#: Each account's reports made since ``since``: how many, and the oldest's time (the rate limit).
_REPORTS_SINCE = (
    sa.select(reports.c.account_id, sa.func.count(), sa.func.min(reports.c.created_at))
    .where(reports.c.account_id.in_(sa.bindparam("accounts", expanding=True)), reports.c.created_at > sa.bindparam("since"))
    .group_by(reports.c.account_id)
)
#: The (account, sample, category) of the reports by ``accounts`` of flags of ``samples``.
_REPORTS_OF_SAMPLES = (
    sa.select(reports.c.account_id, flags.c.sample_id, flags.c.category).join(flags, flags.c.id == reports.c.flag_id)
    .where(reports.c.account_id.in_(sa.bindparam("accounts", expanding=True)), flags.c.sample_id.in_(sa.bindparam("samples", expanding=True)))
)
#: The flags of ``samples`` under ``categories``, locked for the transaction (Postgres: concurrent
#: reports of one flag count each other). By sample id, the index's prefix: SQLite scans the table
#: for a tuple IN; the other categories are dropped by the caller.
_EXISTING = (
    sa.select(flags.c.id, flags.c.sample_id, flags.c.category, flags.c.status)
    .where(flags.c.sample_id.in_(sa.bindparam("samples", expanding=True)), flags.c.category.in_(sa.bindparam("categories", expanding=True)))
    .order_by(flags.c.id).with_for_update()
)
#: Per flag of ``flags``, how many enabled contributor accounts reported it: the contributors'
#: quorum (a staff report waits for another reviewer: README "Review and reports").
_CONTRIBUTORS = (
    sa.select(reports.c.flag_id, sa.func.count()).join(accounts, accounts.c.id == reports.c.account_id)
    .where(reports.c.flag_id.in_(sa.bindparam("flags", expanding=True)), accounts.c.role == "contributor", accounts.c.disabled_at.is_(None))
    .group_by(reports.c.flag_id)
)
#: The reviews of flag ``flag_id``, each reviewer's latest only.
_LATEST_REVIEWS = (
    sa.select(reviews.c.account_id, sa.func.max(reviews.c.id).label("last"))
    .where(reviews.c.flag_id == sa.bindparam("flag_id")).group_by(reviews.c.account_id).subquery()
)
#: How many reviewers' latest decision on flag ``flag_id`` is confirm: the reviewers' quorum.
_CONFIRMING = (
    sa.select(sa.func.count()).select_from(_LATEST_REVIEWS.join(reviews, reviews.c.id == _LATEST_REVIEWS.c.last))
    .where(reviews.c.decision == "confirm")
)


@dataclass(frozen=True)
class Sample:
    """A sample as the latest scan read it (:class:`scrutineer.crowd.snapshot.Snapshot`)."""

    sample_id: str
    shard_id: str
    row_index: int
    url: str | None
    caption: str | None
    #: The licence as the dataset gives it.
    license: str | None = None


@dataclass(frozen=True)
class FlagItem:
    """One flag to record: a sample, its category and the contributor's note."""

    sample: Sample
    category: str
    note: str


@dataclass(frozen=True)
class FlagRequest:
    """One account's submission of flags (:meth:`Flags.flag_many`), recorded all or nothing.

    Args:
        source: where it came from (:data:`scrutineer.crowd.tables.SOURCES`).
        limit: at most ``limit.amount`` reports by ``who`` in any moving window of
            ``limit.get_expiry()`` seconds (``crowd.rate_limit``, parsed by the ``limits``
            library). None: no limit (``flags import``).
    """

    who: Account
    items: list[FlagItem]
    source: str
    limit: RateLimitItem | None = None


def stored_note(note: str) -> str:
    """A report's or review's note as the store keeps it, from every channel (API, form, ``flags
    import``): without NUL (U+0000), which Postgres's text refuses and many readers of a SQLite
    file take for the end of the string, and with each lone surrogate (which UTF-8 cannot encode:
    JSON may escape one) as U+FFFD (issue 23, fault 9). Bidi controls are kept: pages show them
    visibly (:func:`scrutineer.reports.html.visible`)."""
    return note.replace("\x00", "").encode("utf-16", "surrogatepass").decode("utf-16", "replace")


#: Flag ``flag_id``'s claim by an account other than ``account_id`` that runs past ``now``: (name, until).
_HELD = (
    sa.select(accounts.c.name, claims.c.until).join(accounts, accounts.c.id == claims.c.account_id)
    .where(claims.c.flag_id == sa.bindparam("flag_id"), claims.c.account_id != sa.bindparam("account_id"), claims.c.until > sa.bindparam("now"))
)


class Flags(Database):
    """The flags, reports, reviews, claims and audit log of a crowd store (module docstring)."""

    #: The store's clock for claims (UTC): a test sets another to see a claim run out without waiting.
    clock: Callable[[], datetime] = staticmethod(now_utc)

    def flag(self, who: Account, items: list[FlagItem], source: str, limit: RateLimitItem | None = None) -> list[tuple[int, bool]]:
        """Record ``who``'s flags, all or nothing: :meth:`flag_many` of one :class:`FlagRequest`.

        Returns:
            Per item: (flag id, whether a new report was recorded: False when ``who`` had flagged
            that sample under that category already).

        Raises:
            CrowdError: an unknown category (nothing is recorded).
            RateLimited: the items would pass ``limit`` (nothing is recorded).
        """
        [made] = self.flag_many([FlagRequest(who, items, source, limit)])
        if isinstance(made, CrowdError):
            raise made
        return made

    def flag_many(self, requests: list[FlagRequest]) -> list[list[tuple[int, bool]] | CrowdError]:
        """Record several accounts' flags in one transaction, a few set-based statements for all of
        them (the review app's group commit: the flags submitted while one batch is written form
        the next). Each request is all or nothing.

        Rate limits are counted from the reports stored, so every app process and machine sharing
        the store counts the same ones; within the batch, an account's earlier accepted requests
        count too. A repeated flag (the account's report of that sample and category exists, or
        comes earlier in the batch) adds no report and is not counted.

        Returns:
            Per request, in order: per item, (flag id, whether a new report was recorded: False when
            the account had flagged that sample under that category already, in the store or earlier
            in the batch); or the error that refused the whole request: :class:`CrowdError` for an
            unknown category, or :class:`RateLimited`.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database failed; nothing is recorded.
        """
        outcome: list[list[tuple[int, bool]] | CrowdError | None] = [None] * len(requests)
        for i, r in enumerate(requests):
            unknown = next((item.category for item in r.items if item.category not in self.config.categories), None)
            if unknown is not None:
                outcome[i] = CrowdError(f"unknown category {unknown!r}; categories: {', '.join(self.config.categories) or 'none configured'}")
        hosts = {item.sample.url: host_and_domain(item.sample.url or "") for r in requests for item in r.items}  # before taking the write lock
        with self._write() as c:
            self._check_rates(c, requests, outcome)
            accepted = [(i, r.who, item) for i, r in enumerate(requests) if outcome[i] is None for item in r.items]
            made = self._record(c, accepted, {i: r.source for i, r in enumerate(requests)}, hosts) if accepted else []
        for (i, _, _), one in zip(accepted, made):
            outcome[i] = outcome[i] or []
            outcome[i].append(one)
        return [[] if o is None else o for o in outcome]

    def _check_rates(self, c: sa.Connection, requests: list[FlagRequest], outcome: list) -> None:
        """Set ``outcome[i]`` to :class:`RateLimited` for each request that would pass its limit."""
        now = now_utc()
        limited = [(i, r) for i, r in enumerate(requests) if r.limit is not None and outcome[i] is None]
        windows: dict[int, set[int]] = {}  # window seconds -> accounts
        for _, r in limited:
            windows.setdefault(r.limit.get_expiry(), set()).add(r.who.id)
        stored: dict[tuple[int, int], tuple[int, datetime | None]] = {}  # (account, window seconds) -> (reports, oldest)
        for seconds, who in windows.items():
            counted = c.execute(_REPORTS_SINCE, {"accounts": list(who), "since": now - timedelta(seconds=seconds)}).all()
            stored |= {(a, seconds): (0, None) for a in who} | {(a, seconds): (n, oldest) for a, n, oldest in counted}
        # which items repeat a report matters only if a limit could be passed with every item counted
        upper = {key: n for key, (n, _) in stored.items()}
        for _, r in limited:
            upper[r.who.id, r.limit.get_expiry()] += len(r.items)
        near = any(upper[r.who.id, r.limit.get_expiry()] > r.limit.amount for _, r in limited)
        reported = self._reported(c, {(r.who.id, item.sample.sample_id, item.category) for _, r in limited for item in r.items}) if near else set()
        for i, r in limited:
            key = (r.who.id, r.limit.get_expiry())
            count, oldest = stored[key]
            new = {(r.who.id, item.sample.sample_id, item.category) for item in r.items} - reported
            if count + len(new) > r.limit.amount:
                wait = (as_utc(oldest) + timedelta(seconds=key[1]) - now).total_seconds() if oldest else key[1]
                outcome[i] = RateLimited(max(1, math.ceil(wait)))
            else:
                stored[key] = (count + len(new), oldest or now)
                reported |= new

    def _reported(self, c: sa.Connection, wanted: set[tuple[int, str, str]]) -> set[tuple[int, str, str]]:
        """Which of ``wanted`` (account id, sample id, category) the store has a report of."""
        accounts_ = list({a for a, _, _ in wanted})
        found: set[tuple[int, str, str]] = set()
        for samples in chunks(sorted({s for _, s, _ in wanted}), 500):
            found |= {tuple(row) for row in c.execute(_REPORTS_OF_SAMPLES, {"accounts": accounts_, "samples": samples})}
        return found & wanted

    def _record(self, c: sa.Connection, items: list[tuple[int, Account, FlagItem]], sources: dict[int, str],
                hosts: dict[str | None, tuple[str, str]]) -> list[tuple[int, bool]]:
        """Insert the flags and reports of ``items`` ((request index, account, item)); per item,
        (flag id, whether its report is new)."""
        now = now_utc()
        firsts: dict[tuple[str, str], FlagItem] = {}
        for _, _, item in items:
            firsts.setdefault((item.sample.sample_id, item.category), item)
        rows = []
        for key in sorted(firsts):  # in key order: concurrent Postgres writers lock alike
            s, category = firsts[key].sample, firsts[key].category
            host, domain = hosts[s.url]
            rows.append({"sample_id": s.sample_id, "shard_id": s.shard_id, "row_index": s.row_index, "url": s.url, "host": host,
                         "registrable_domain": domain, "caption": s.caption, "category": category, "status": "pending",
                         "created_at": now, "updated_at": now})
        created = {(s, k): flag_id for flag_id, s, k in c.execute(
            self._insert(flags).on_conflict_do_nothing().returning(flags.c.id, flags.c.sample_id, flags.c.category), rows)}
        flag_ids, status = dict(created), dict.fromkeys(created.values(), "pending")
        existing = sorted(set(firsts) - set(created))
        for chunk in chunks(existing, 500):
            found = c.execute(_EXISTING, {"samples": sorted({s for s, _ in chunk}), "categories": sorted({k for _, k in chunk})})
            for flag_id, s, k, st in found:
                if (s, k) in firsts:
                    flag_ids[s, k], status[flag_id] = flag_id, st
        report_rows: dict[tuple[int, int], dict] = {}
        for i, who, item in items:  # the first of an account's repeats is the one recorded
            flag_id = flag_ids[item.sample.sample_id, item.category]
            report_rows.setdefault((flag_id, who.id), {"flag_id": flag_id, "account_id": who.id, "note": stored_note(item.note), "source": sources[i], "created_at": now})
        new_reports = {(flag_id, account_id) for flag_id, account_id in c.execute(
            self._insert(reports).on_conflict_do_nothing().returning(reports.c.flag_id, reports.c.account_id), list(report_rows.values()))}
        made, trail, audited = [], [], set()
        for i, who, item in items:
            key = (item.sample.sample_id, item.category)
            flag_id = flag_ids[key]
            if key in created and flag_id not in audited:
                audited.add(flag_id)
                trail.append(audit_row(who.name, "flag", flag_id, None, "pending", {"category": item.category}))
            new = (flag_id, who.id) in new_reports
            if new:
                new_reports.discard((flag_id, who.id))
                trail.append(audit_row(who.name, "report", flag_id, detail={"category": item.category, "source": sources[i]}))
            made.append((flag_id, new))
        if trail:
            c.execute(audit.insert(), trail)
        quorum = self.config.confirm.contributors
        reported = sorted({flag_id for flag_id, new in made if new and status[flag_id] == "pending"})
        for chunk in chunks(reported if quorum else [], 1000):
            for flag_id, reporters in c.execute(_CONTRIBUTORS, {"flags": chunk}).all():
                if reporters >= quorum:
                    self._set_status(c, "quorum", flag_id, "pending", "confirmed", {"contributors": reporters})
        return made

    def review(self, who: Account, flag_id: int, decision: str, reason: str, note: str, duplicate_of: int | None = None,
               pending_only: bool = False) -> str:
        """Record a reviewer's decision on a flag and release its claim.

        Args:
            duplicate_of: with a reject as :data:`~scrutineer.crowd.tables.DUPLICATE_REASON` (and
                only then), the id of the other flag it duplicates (stored in
                ``review_duplicates`` and in the audit entry's detail).
            pending_only: refuse a flag that is no longer pending (a bulk reject).

        Returns:
            The flag's status afterwards.

        Raises:
            NotAllowed: ``who`` is not a reviewer or reported the flag.
            NotFound: no such flag.
            ClaimHeld: another reviewer's claim on it has not run out.
            NotPending: ``pending_only`` and the flag is decided.
            CrowdError: an unknown decision, a reason code the config does not list for it, a
                duplicate reject without ``duplicate_of`` (or ``duplicate_of`` with another reason),
                or ``duplicate_of`` naming no other flag.
        """
        if not who.reviews:
            raise NotAllowed("only reviewers and maintainers decide flags")
        if decision not in DECISIONS:
            raise CrowdError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
        allowed = getattr(self.config.reasons, decision)
        if reason not in allowed:
            raise CrowdError(f"reason for {decision!r} must be one of {', '.join(allowed)}, not {reason!r}")
        duplicate = decision == "reject" and reason == DUPLICATE_REASON
        if duplicate and duplicate_of is None:
            raise CrowdError(f"a reject as {DUPLICATE_REASON} names the flag it duplicates (duplicate of #N)")
        if not duplicate and duplicate_of is not None:
            raise CrowdError(f"duplicate of #N goes with a reject as {DUPLICATE_REASON} only")
        if duplicate_of == flag_id:
            raise CrowdError("a flag cannot be a duplicate of itself")
        with self._write() as c:
            status = c.execute(sa.select(flags.c.status).where(flags.c.id == flag_id).with_for_update()).scalar()
            if status is None:
                raise NotFound(f"no flag {flag_id}")
            if c.execute(sa.select(reports.c.id).where(reports.c.flag_id == flag_id, reports.c.account_id == who.id)).first():
                raise NotAllowed("a reviewer cannot decide a flag they reported")
            self._check_claim(c, who, flag_id)
            if pending_only and status != "pending":
                raise NotPending(f"flag {flag_id} is {status}, no longer pending")
            if duplicate_of is not None and c.execute(sa.select(flags.c.id).where(flags.c.id == duplicate_of)).first() is None:
                raise CrowdError(f"no flag #{duplicate_of} for this one to duplicate")
            review_id = c.execute(reviews.insert().values(flag_id=flag_id, account_id=who.id, decision=decision, reason=reason,
                                                          note=stored_note(note), created_at=now_utc()).returning(reviews.c.id)).scalar_one()
            detail = {"decision": decision, "reason": reason} | ({"duplicate_of": duplicate_of} if duplicate else {})
            if duplicate:
                c.execute(duplicates.insert().values(review_id=review_id, duplicate_of=duplicate_of))
            c.execute(claims.delete().where(claims.c.flag_id == flag_id))
            self._audit(c, who.name, "review", flag_id, detail=detail)
            new = DECISIONS[decision]
            if decision == "confirm" and c.execute(_CONFIRMING, {"flag_id": flag_id}).scalar_one() < self.config.confirm.reviewers:
                new = status
            if new != status:
                self._set_status(c, who.name, flag_id, status, new, detail)
        return new

    def claim(self, who: Account, flag_id: int) -> datetime:
        """Claim a flag for ``who`` for ``crowd.claim_minutes`` from now (renewing their own claim).

        Returns:
            When the claim runs out (UTC).

        Raises:
            NotAllowed: ``who`` is not a reviewer or reported the flag.
            NotFound: no such flag.
            ClaimHeld: another reviewer's claim has not run out.
        """
        if not who.reviews:
            raise NotAllowed("only reviewers and maintainers claim flags")
        with self._write() as c:
            if c.execute(sa.select(flags.c.id).where(flags.c.id == flag_id)).first() is None:
                raise NotFound(f"no flag {flag_id}")
            if c.execute(sa.select(reports.c.id).where(reports.c.flag_id == flag_id, reports.c.account_id == who.id)).first():
                raise NotAllowed("a reviewer cannot claim a flag they reported")
            now = self._check_claim(c, who, flag_id)
            until = now + timedelta(minutes=self.config.claim_minutes)
            c.execute(claims.delete().where(claims.c.flag_id == flag_id))
            c.execute(claims.insert().values(flag_id=flag_id, account_id=who.id, until=until))
        return until

    def _check_claim(self, c: sa.Connection, who: Account, flag_id: int) -> datetime:
        """Raise :class:`ClaimHeld` if another account's claim on the flag runs past now; now."""
        now = self.clock()
        held = c.execute(_HELD, {"flag_id": flag_id, "account_id": who.id, "now": now}).first()
        if held is not None:
            raise ClaimHeld(flag_id, held[0], as_utc(held[1]))
        return now

    def _set_status(self, c: sa.Connection, actor: str, flag_id: int, old: str, new: str, detail: dict) -> None:
        c.execute(flags.update().where(flags.c.id == flag_id).values(status=new, updated_at=now_utc()))
        self._audit(c, actor, "flag", flag_id, old, new, detail)
