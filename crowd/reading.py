"""What is read of the crowd store: the review queue (oldest or newest first), the next flag a
reviewer may take, one flag's detail, the counts, a reviewer's progress, and the confirmed flags
``sync`` turns into findings."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, time
from functools import cached_property
from typing import Any

import sqlalchemy as sa

from scrutineer.core.errors import NotFound
from scrutineer.crowd.accounts import Account
from scrutineer.crowd.database import Database, as_utc, dicts
from scrutineer.crowd.tables import (
    STATUSES,
    accounts,
    audit,
    claims,
    duplicates,
    flags,
    reports,
    reviews,
)

#: How the audit trail names another contributor's report to a contributor.
OTHER_CONTRIBUTOR = "another contributor"
#: A column of a query of ``flags``: how many contributors reported the flag.
_REPORTS = sa.select(sa.func.count()).where(reports.c.flag_id == flags.c.id).scalar_subquery().label("reports")
_BY = accounts.c.name.label("by")
#: One flag's reports, reviews and audit trail, oldest first (:meth:`Reading.flag_detail`).
_FLAG_REPORTS = (
    sa.select(_BY, reports.c.note, reports.c.source, reports.c.created_at).join(accounts)
    .where(reports.c.flag_id == sa.bindparam("flag_id")).order_by(reports.c.id)
)
_FLAG_REVIEWS = (
    sa.select(_BY, reviews.c.decision, reviews.c.reason, reviews.c.note, reviews.c.created_at, duplicates.c.duplicate_of)
    .select_from(reviews.join(accounts).outerjoin(duplicates, duplicates.c.review_id == reviews.c.id))
    .where(reviews.c.flag_id == sa.bindparam("flag_id")).order_by(reviews.c.id)
)
_CLAIMER = accounts.alias("claimer")
#: The claim of each flag that runs past ``now``: joined to a query of ``flags``.
_LIVE_CLAIM = sa.and_(claims.c.flag_id == flags.c.id, claims.c.until > sa.bindparam("now"))
#: Decisions since ``since``: everyone's, and ``account_id``'s.
_DECIDED_SINCE = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((reviews.c.account_id == sa.bindparam("account_id"), 1), else_=0)), 0)).where(
    reviews.c.created_at >= sa.bindparam("since"))
_FLAG_AUDIT = (
    sa.select(audit.c.at, audit.c.actor, audit.c.action, audit.c.from_status, audit.c.to_status, audit.c.detail)
    .where(audit.c.flag_id == sa.bindparam("flag_id")).order_by(audit.c.id)
)
#: Flags by category and status (:meth:`Reading.counts`).
_BY_CATEGORY = sa.select(flags.c.category, flags.c.status, sa.func.count()).group_by(flags.c.category, flags.c.status)
#: The ten registrable domains with the most flags (:meth:`Reading.counts`).
_TOP_DOMAINS = (
    sa.select(flags.c.registrable_domain, sa.func.count().label("n")).group_by(flags.c.registrable_domain)
    .order_by(sa.desc("n"), flags.c.registrable_domain).limit(10)
)
#: The confirmed flags, for ``sync`` (:meth:`Reading.confirmed`).
_CONFIRMED = (
    sa.select(flags.c.id, flags.c.sample_id, flags.c.shard_id, flags.c.row_index, flags.c.url, flags.c.category, flags.c.updated_at)
    .where(flags.c.status == "confirmed").order_by(flags.c.id)
)


def _reported(entry: dict) -> bool:
    """Whether an audit entry records a contributor's report (or the first one, which created the flag)."""
    return entry["action"] == "report" or (entry["action"] == "flag" and entry["from_status"] is None)


def _without_duplicate(entry: dict) -> dict:
    """An audit entry without the id of the flag a review named as duplicated (for a contributor:
    that another flag exists is not theirs to learn)."""
    if '"duplicate_of"' not in entry["detail"]:
        return entry
    return entry | {"detail": json.dumps({k: v for k, v in json.loads(entry["detail"]).items() if k != "duplicate_of"}, sort_keys=True)}


class Reading(Database):
    """What the review app and ``sync`` read of a crowd store (module docstring)."""

    #: The store's clock (:attr:`scrutineer.crowd.flags.Flags.clock`): which claims still run.
    clock: Callable[[], datetime]

    @cached_property
    def _sensitive_sample(self) -> sa.Label:
        """A column of a query of ``flags``: whether the flag's sample has a flag of a sensitive category (:meth:`flags`)."""
        other = flags.alias("other")
        plain = [name for name in self.config.categories if not self.sensitive(name)]
        return sa.exists().where(other.c.sample_id == flags.c.sample_id, other.c.category.not_in(plain)).label("sensitive")

    def sensitive(self, category: str) -> bool:
        """Whether a category is sensitive (an unknown one, say from an older config, counts as sensitive)."""
        c = self.config.categories.get(category)
        return c is None or c.sensitive

    def flags(self, who: Account, status: str | None = None, category: str | None = None, domain: str | None = None,
              before: int | None = None, limit: int = 50, oldest: bool = False, after: int | None = None,
              sample_id: str | None = None) -> list[dict[str, Any]]:
        """Flags, newest first (or ``oldest`` first): all of them for reviewers, the ones ``who``
        reported for contributors.

        Args:
            before: only flags with a smaller id (keyset paging newest first: pass the last id of a page).
            after: only flags with a larger id (keyset paging oldest first).
            sample_id: only flags of this sample (a sample's page).
            limit: at most this many.

        Returns:
            Dicts with the ``flags`` columns plus ``reports`` (how many contributors flagged it) and
            ``sensitive``: whether the flag's sample has a flag of a sensitive category
            (:meth:`sensitive`), whatever its status; such a sample's URL is restricted wherever it
            appears, under any category. For reviewers also ``claimed_by`` and ``claimed_until``:
            the claim that runs past now (None, None without one).
        """
        query = sa.select(flags, _REPORTS, self._sensitive_sample).limit(limit)
        key = flags.c.id
        if who.reviews:
            query = (query.add_columns(_CLAIMER.c.name.label("claimed_by"), claims.c.until.label("claimed_until"))
                     .outerjoin(claims, _LIVE_CLAIM).outerjoin(_CLAIMER, _CLAIMER.c.id == claims.c.account_id))
        else:  # read from the account's own reports by their index, not by testing every flag
            mine = reports.alias("mine")
            query = query.join(mine, mine.c.flag_id == flags.c.id).where(mine.c.account_id == who.id)
            key = mine.c.flag_id
        for column, value in ((flags.c.status, status), (flags.c.category, category), (flags.c.registrable_domain, domain),
                              (flags.c.sample_id, sample_id)):
            if value:
                query = query.where(column == value)
        if before is not None:
            query = query.where(key < before)
        if after is not None:
            query = query.where(key > after)
        query = query.order_by(key if oldest else key.desc())
        with self._read() as c:
            return dicts(c.execute(query, {"now": self.clock()} if who.reviews else {}))

    def next_pending(self, who: Account, skip: int | None = None) -> int | None:
        """The flag a reviewer takes next: the oldest pending flag that no other reviewer's claim
        holds, that ``who`` did not report and has not decided already; with ``skip``, the first
        such after it (then from the start, ``skip`` left out). None when there is none."""
        now = self.clock()
        query = (
            sa.select(flags.c.id).where(flags.c.status == "pending")
            .where(~sa.exists().where(reports.c.flag_id == flags.c.id, reports.c.account_id == who.id))
            .where(~sa.exists().where(reviews.c.flag_id == flags.c.id, reviews.c.account_id == who.id))
            .where(~sa.exists().where(claims.c.flag_id == flags.c.id, claims.c.account_id != who.id, claims.c.until > now))
            .order_by(flags.c.id).limit(1)
        )
        with self._read() as c:
            if skip is None:
                return c.execute(query).scalar()
            return c.execute(query.where(flags.c.id > skip)).scalar() or c.execute(query.where(flags.c.id < skip)).scalar()

    def decided_today(self, who: Account) -> tuple[int, int]:
        """Decisions recorded since midnight UTC: (``who``'s, everyone's)."""
        since = datetime.combine(self.clock().date(), time(), self.clock().tzinfo)
        with self._read() as c:
            everyone, mine = c.execute(_DECIDED_SINCE, {"since": since, "account_id": who.id}).one()
        return mine, everyone

    def flag_detail(self, who: Account, flag_id: int) -> dict[str, Any]:
        """One flag (the ``flags`` columns and ``sensitive``, as :meth:`flags` gives them) with its
        reports, reviews (each with ``duplicate_of``: the flag a duplicate reject named, or None)
        and audit trail (oldest first), and ``claim``: for reviewers, ``{"by", "until"}`` of the
        claim that runs past now, else None.

        Raises:
            NotFound: no such flag, or a contributor asking for a flag they did not report.
        """
        with self._read() as c:
            row = c.execute(sa.select(flags, self._sensitive_sample).where(flags.c.id == flag_id)).first()
            mine = c.execute(sa.select(reports.c.id).where(reports.c.flag_id == flag_id, reports.c.account_id == who.id)).first()
            if row is None or not (who.reviews or mine):
                raise NotFound(f"no flag {flag_id}")
            detail = dict(row._mapping)
            for key, query in (("reports", _FLAG_REPORTS), ("reviews", _FLAG_REVIEWS), ("audit", _FLAG_AUDIT)):
                detail[key] = dicts(c.execute(query, {"flag_id": flag_id}))
            claim = c.execute(sa.select(_CLAIMER.c.name, claims.c.until).join(_CLAIMER, _CLAIMER.c.id == claims.c.account_id)
                              .where(claims.c.flag_id == flag_id, claims.c.until > self.clock())).first() if who.reviews else None
        detail["claim"] = {"by": claim[0], "until": as_utc(claim[1])} if claim else None
        if not who.reviews:  # a contributor sees their own report, not who else flagged it or why, nor another flag's id
            detail["reports"] = [r for r in detail["reports"] if r["by"] == who.name]
            detail["reviews"] = [r | {"duplicate_of": None} for r in detail["reviews"]]
            detail["audit"] = [_without_duplicate(a | {"actor": OTHER_CONTRIBUTOR} if _reported(a) and a["actor"] != who.name else a)
                               for a in detail["audit"]]
        return detail

    def status_counts(self) -> dict[str, int]:
        """Flags by status, ``{status: n}`` (every status, zeros included): the queue's header,
        cheaper than :meth:`counts`."""
        with self._read() as c:
            rows = c.execute(sa.select(flags.c.status, sa.func.count()).group_by(flags.c.status)).all()
        return dict.fromkeys(STATUSES, 0) | dict(rows)

    def counts(self) -> dict[str, Any]:
        """Flags by status, by category and status, and the top registrable domains by flags:
        ``{"by_status": {status: n}, "by_category": [{"category", "sensitive", "pending",
        "confirmed", "rejected"}], "top_domains": [{"domain", "flags"}]}`` (top 10)."""
        with self._read() as c:
            rows = c.execute(_BY_CATEGORY).all()
            domains = c.execute(_TOP_DOMAINS).all()
        by_status = dict.fromkeys(STATUSES, 0)
        by_category: dict[str, dict] = {}
        for category, status, n in rows:
            by_status[status] += n
            entry = by_category.setdefault(category, {"category": category, "sensitive": self.sensitive(category)} | dict.fromkeys(STATUSES, 0))
            entry[status] += n
        return {"by_status": by_status, "by_category": sorted(by_category.values(), key=lambda e: e["category"]),
                "top_domains": [{"domain": d, "flags": n} for d, n in domains]}

    def confirmed(self) -> list[dict[str, Any]]:
        """Every confirmed flag with the ids of its reports and reviews, for ``sync``: dicts with
        id, sample_id, shard_id, row_index, url, category, updated_at, report_ids, review_ids."""
        with self._read() as c:
            rows = dicts(c.execute(_CONFIRMED))
            ids = [r["id"] for r in rows]
            report_ids: dict[int, list[int]] = {}
            review_ids: dict[int, list[int]] = {}
            for table, into in ((reports, report_ids), (reviews, review_ids)):
                for flag_id, row_id in c.execute(sa.select(table.c.flag_id, table.c.id).where(table.c.flag_id.in_(ids)).order_by(table.c.id)):
                    into.setdefault(flag_id, []).append(row_id)
        for r in rows:
            r["report_ids"], r["review_ids"] = report_ids.get(r["id"], []), review_ids.get(r["id"], [])
        return rows

    def reported_by(self, who: Account, category: str | None = None, before: int | None = None, limit: int = 50) -> list[int]:
        """Ids of the flags ``who`` reported, whatever their role (a reviewer's own flags: "My
        flags", :mod:`scrutineer.crowd.mine`), newest first; read by the ``reports_by_account`` index.
        (No status filter: a contributor's flag of a sensitive category shows as pending whatever
        its status, so "My flags" filters the statuses shown.)

        Args:
            category: only flags of this category.
            before: only flags with a smaller id (keyset paging: pass the last id of a page).
            limit: at most this many.
        """
        query = sa.select(reports.c.flag_id).where(reports.c.account_id == who.id)
        if category:
            query = query.join(flags, flags.c.id == reports.c.flag_id).where(flags.c.category == category)
        if before is not None:
            query = query.where(reports.c.flag_id < before)
        with self._read() as c:
            return list(c.execute(query.order_by(reports.c.flag_id.desc()).limit(limit)).scalars())
