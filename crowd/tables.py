"""The crowd store's schema: its SQLAlchemy tables, the values their columns take, and the
triggers that keep the audit log append-only (:mod:`scrutineer.crowd.store` describes the model)."""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa

Role = Literal["contributor", "reviewer", "maintainer"]
ROLES: tuple[Role, ...] = ("contributor", "reviewer", "maintainer")
#: A flag's status.
STATUSES = ("pending", "confirmed", "rejected")
#: A reviewer's decision and the status it sets.
DECISIONS = {"confirm": "confirmed", "reject": "rejected"}
#: Where a flag came from.
SOURCES = ("api", "form", "import")
#: The reject reason that names the flag this one duplicates (``duplicate_of``).
DUPLICATE_REASON = "duplicate_flag"
#: The longest account name.
NAME_CHARS = 64

metadata = sa.MetaData()

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(NAME_CHARS), nullable=False, unique=True),
    sa.Column("role", sa.String(16), sa.CheckConstraint(f"role IN {ROLES}"), nullable=False),
    sa.Column("password_hash", sa.String, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("disabled_at", sa.DateTime(timezone=True)),  # null: enabled
    sa.Column("signed_in_at", sa.DateTime(timezone=True)),  # the last log-in through the form
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("session_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

failures = sa.Table(
    "sign_in_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(128), nullable=False),  # account:<name tried> | address:<client address>
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Index("failures_by_key", "key", "at"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

flags = sa.Table(
    "flags",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sample_id", sa.String, nullable=False),
    sa.Column("shard_id", sa.String, nullable=False),
    sa.Column("row_index", sa.BigInteger, nullable=False),
    sa.Column("url", sa.String),
    sa.Column("host", sa.String, nullable=False),
    sa.Column("registrable_domain", sa.String, nullable=False),
    sa.Column("caption", sa.String),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), sa.CheckConstraint(f"status IN {STATUSES}"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("sample_id", "category"),
    sa.Index("flags_by_status", "status", "category", "id"),
    sa.Index("flags_by_status_only", "status", "id"),  # the queue filtered by status alone, newest first
    sa.Index("flags_by_domain", "registrable_domain", "id"),
    sa.Index("flags_by_category_time", "category", "created_at"),  # the flood guard's window (scrutineer.crowd.holds)
)

reports = sa.Table(
    "flag_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("flag_id", sa.ForeignKey("flags.id"), nullable=False),
    sa.Column("account_id", sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("note", sa.String, nullable=False),
    sa.Column("source", sa.String(8), sa.CheckConstraint(f"source IN {SOURCES}"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("flag_id", "account_id"),
    sa.Index("reports_by_account", "account_id", "flag_id"),
    sa.Index("reports_by_account_time", "account_id", "created_at"),  # the rate limit's window
)

reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("flag_id", sa.ForeignKey("flags.id"), nullable=False, index=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("decision", sa.String(8), sa.CheckConstraint(f"decision IN {tuple(DECISIONS)}"), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("note", sa.String, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("reviews_by_time", "created_at"),  # the queue's decisions today
)

#: Which flag a review rejected as a duplicate of (reason :data:`DUPLICATE_REASON`): a table of its
#: own, so a store made before it gains it through ``create_all`` (a column added to ``reviews``
#: would need a migration).
duplicates = sa.Table(
    "review_duplicates",
    metadata,
    sa.Column("review_id", sa.ForeignKey("reviews.id"), primary_key=True),
    sa.Column("duplicate_of", sa.ForeignKey("flags.id"), nullable=False),
)

#: Who is reviewing a flag, until when (:meth:`scrutineer.crowd.flags.Flags.claim`): working state,
#: not a decision, so claims are not audited; a flag's row is replaced by the next claim and
#: deleted by a decision.
claims = sa.Table(
    "claims",
    metadata,
    sa.Column("flag_id", sa.ForeignKey("flags.id"), primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("until", sa.DateTime(timezone=True), nullable=False),
)

#: A maintainer's decision on a bank entry the flood guard held (:mod:`scrutineer.crowd.holds`):
#: keyed by the entry's hold id (:func:`scrutineer.core.flood.hold_id`), so it holds for every run
#: of that bank version; ``sync`` copies these into the findings store.
hold_decisions = sa.Table(
    "hold_decisions",
    metadata,
    sa.Column("hold_id", sa.String(32), primary_key=True),
    sa.Column("bank", sa.String, nullable=False),
    sa.Column("bank_version", sa.String, nullable=False),
    sa.Column("signal", sa.String(16), nullable=False),
    sa.Column("entry", sa.String, nullable=False),
    sa.Column("decision", sa.String(16), sa.CheckConstraint("decision IN ('confirmed', 'dismissed')"), nullable=False),
    sa.Column("decided_by", sa.String(64), nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.String, nullable=False),
)

#: A crowd category the flood guard held: more new flags than ``flood.crowd`` in a window. Its
#: flags made from ``held_at`` act only once a maintainer confirms it (a dismissal idles those made
#: before ``decided_at`` for good). At most one undecided hold per category.
category_holds = sa.Table(
    "category_holds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("flags", sa.Integer, nullable=False),  # new flags of the category in the window when it was held
    sa.Column("decision", sa.String(16), sa.CheckConstraint("decision IN ('confirmed', 'dismissed')")),  # null: held
    sa.Column("decided_by", sa.String(64)),
    sa.Column("decided_at", sa.DateTime(timezone=True)),
    sa.Column("note", sa.String),
    sa.Index("one_open_hold", "category", unique=True, sqlite_where=sa.text("decision IS NULL"), postgresql_where=sa.text("decision IS NULL")),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),  # an account name, or "quorum"
    sa.Column("action", sa.String(16), nullable=False),  # account | flag | report | review | hold
    sa.Column("flag_id", sa.Integer, index=True),
    sa.Column("from_status", sa.String(16)),
    sa.Column("to_status", sa.String(16)),
    sa.Column("detail", sa.String, nullable=False),  # JSON
)

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String, nullable=False),
)

#: Triggers that make the database refuse to change or delete audit rows, per dialect.
APPEND_ONLY = {
    "sqlite": [
        "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$",
        "CREATE OR REPLACE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    ],
}
