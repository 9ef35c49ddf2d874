"""The review app's JSON API under ``/api`` (issue 11, "The app"), documented by FastAPI's OpenAPI.

Every route but ``GET /api/health`` needs an API token (``Authorization: Bearer …``) or a session;
a session's POSTs also need the CSRF token in ``x-csrftoken`` (:mod:`scrutineer.crowd.app`). Errors are
``{"detail": message}``, with the status :data:`HTTP_STATUS` maps each error to: 401 not signed
in, 403 not allowed, 404 no such flag or sample, 409 another reviewer's claim holds the flag (or a bulk
reject found it decided, or a flood-guard hold was decided already), 422 invalid input (a request FastAPI cannot
validate gives ``{"detail": [{"type", "loc", "msg"}]}``, without the input: an id past
:data:`MAX_ID`, text that is not Unicode), 429 rate limited (with ``Retry-After``), 500 the crowd
store cannot be opened, 503 no scan has been published yet or the app is stopping; a body other
than JSON or a URL-encoded form is refused before any route (:mod:`scrutineer.crowd.bodies`).

What a contributor is shown of their flags depends on nothing they do not know already
(:func:`scrutineer.crowd.access.shown_flags`): no URL, whether or not the sample is restricted.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from scrutineer.core.errors import (
    AlreadyDecided,
    AppStopping,
    ClaimHeld,
    CrowdError,
    CrowdStoreError,
    NotAllowed,
    NotFound,
    NotPending,
    NotSignedIn,
    RateLimited,
    WorkspaceError,
)
from scrutineer.crowd.access import (
    Served,
    Services,
    SignedIn,
    shown_detail,
    shown_flags,
    signed_in,
)
from scrutineer.crowd.accounts import Account
from scrutineer.crowd.flag_writer import Submission
from scrutineer.crowd.snapshot import SampleKey

#: The HTTP status the app answers each error of a request with: the first of the error's classes
#: (its own, then its bases) listed here. A :class:`~scrutineer.core.errors.CrowdError` of no
#: other kind is invalid input.
HTTP_STATUS: dict[type[Exception], int] = {
    NotSignedIn: 401,
    NotAllowed: 403,
    NotFound: 404,
    ClaimHeld: 409,
    NotPending: 409,
    AlreadyDecided: 409,
    RateLimited: 429,
    CrowdStoreError: 500,
    AppStopping: 503,
    WorkspaceError: 503,  # no review snapshot yet
    CrowdError: 422,
}


def http_status(error: CrowdError | WorkspaceError) -> int:
    """The HTTP status the app answers ``error`` with (:data:`HTTP_STATUS`)."""
    return next(HTTP_STATUS[kind] for kind in type(error).__mro__ if kind in HTTP_STATUS)


def http_headers(error: CrowdError | WorkspaceError) -> dict[str, str] | None:
    """The headers of the answer to an error: ``Retry-After`` (whole seconds) for :class:`RateLimited`."""
    return {"Retry-After": str(error.retry_after)} if isinstance(error, RateLimited) else None


NOTE_CHARS = 4000
#: The largest id of a flag: SQLite's INTEGER is a signed 64-bit number
#: (https://www.sqlite.org/datatype3.html), Postgres's BIGINT too; a larger id in a request is 422.
MAX_ID = 2**63 - 1
#: A flag's id in a path.
FlagId = Annotated[int, Path(ge=1, le=MAX_ID, description="A flag's id.")]
#: The ``before`` of a page of flags.
Before = Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only flags with a smaller id: the last id of the previous page.")]
#: The ``after`` of a page of flags, oldest first.
After = Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only flags with a larger id: the last id of the previous page, oldest first.")]


class FlagIn(BaseModel):
    """A flag: one sample, by its id or its URL (a URL flags every sample of the latest scan that
    has it), under a category of the config's ``crowd.categories``."""

    model_config = ConfigDict(extra="forbid")

    sample_id: str | None = Field(None, min_length=1, description="The sample's id in the latest scan.")
    url: str | None = Field(None, min_length=1, description="The sample's URL, exactly as in the dataset.")
    category: str = Field(description="A category of the config's `crowd.categories`.")
    note: str = Field("", max_length=NOTE_CHARS, description="Why: what the reviewer should know.")

    @model_validator(mode="after")
    def _one_key(self) -> FlagIn:
        if (self.sample_id is None) == (self.url is None):
            raise ValueError("give exactly one of sample_id and url")
        return self


class FlagCreated(BaseModel):
    """The flags recorded: ``ids`` has one per sample (several when a URL matched several)."""

    id: int = Field(description="The first flag's id.")
    ids: list[int]


class FlagFields(BaseModel):
    """What a flag records: the sample as the scan read it, its category and status."""

    id: int
    sample_id: str
    shard_id: str
    row_index: int
    url: str | None = Field(description="Null for contributors, on every flag (whether a sample is restricted is not theirs to learn).")
    host: str
    registrable_domain: str
    caption: str | None
    category: str
    status: Literal["pending", "confirmed", "rejected"]
    created_at: datetime
    updated_at: datetime
    restricted: bool = Field(description="For reviewers and maintainers: the sample has a hash-bank match or a flag of a sensitive "
                             "category (its URL is for them only, its image for nobody). For contributors: the flag's own category is sensitive.")


class Flag(FlagFields):
    """A flag in a list."""

    reports: int = Field(description="How many contributors flagged it (to a contributor, 1 on a flag of a sensitive category).")


class FlagList(BaseModel):
    """A page of flags."""

    flags: list[Flag] = Field(description="Newest first; page on with `before` = the last id.")


class Report(BaseModel):
    """One contributor's report of a flag."""

    by: str
    note: str
    source: Literal["api", "form", "import"]
    created_at: datetime


class Review(BaseModel):
    """One reviewer's decision on a flag."""

    by: str
    decision: Literal["confirm", "reject"]
    reason: str
    note: str | None = Field(description="Null for contributors (a note may quote a restricted URL).")
    created_at: datetime
    duplicate_of: int | None = Field(None, description="The flag a reject as `duplicate_flag` names (null for contributors).")


class Claim(BaseModel):
    """Who is reviewing a flag, until when: opening it claims it for `crowd.claim_minutes`; others cannot decide it meanwhile."""

    by: str
    until: datetime


class AuditEntry(BaseModel):
    """One change in the audit log (another contributor's report is named "another contributor" to a contributor)."""

    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    detail: dict


class FlagDetail(FlagFields):
    """A flag with its reports (a contributor sees only their own), reviews and audit trail (a
    contributor's flag of a sensitive category shows them only their own report: pending, no
    reviews, :func:`scrutineer.crowd.access.shown_detail`)."""

    reports: list[Report]
    reviews: list[Review]
    audit: list[AuditEntry]
    claim: Claim | None = Field(None, description="For reviewers and maintainers: the claim that holds the flag now, if any.")


class ReviewIn(BaseModel):
    """A reviewer's decision; ``reason`` is one of the config's ``crowd.reasons.<decision>``."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["confirm", "reject"]
    reason: str
    note: str = Field("", max_length=NOTE_CHARS)
    duplicate_of: int | None = Field(None, ge=1, le=MAX_ID, description="With reason `duplicate_flag` (only): the id of the flag this one duplicates.")


class ReviewOut(BaseModel):
    """The flag decided."""

    id: int
    status: Literal["pending", "confirmed", "rejected"] = Field(description="The flag's status after the decision.")


class Health(BaseModel):
    """The app is up."""

    status: Literal["ok"]
    run_id: str | None = Field(description="The scan run the review snapshot holds; null before the first scan.")


public = APIRouter(prefix="/api", tags=["api"])
router = APIRouter(prefix="/api", tags=["api"], dependencies=[Depends(signed_in)])


async def record_flag(s: Services, who: Account, body: FlagIn, source: str) -> tuple[list[int], bool]:
    """Record ``who``'s flag, counted against the rate limit.

    Returns:
        (flag ids, one per sample; whether any report was new).

    Raises:
        RateLimited: past ``crowd.rate_limit``.
        NotFound: no such sample or URL in the latest scan.
        CrowdError: an unknown category.
        AppStopping: the app is stopping.
        WorkspaceError: no review snapshot yet.
    """
    key: SampleKey = ("sample_id", body.sample_id) if body.sample_id else ("url", body.url or "")
    made = await s.flag(Submission(who, key, body.category, body.note, source))
    return [flag_id for flag_id, _ in made], any(new for _, new in made)


@public.get("/health")
def health(s: Served) -> Health:
    """Whether the app is up, and which scan it serves."""
    try:
        run_id = s.snapshot.run_id()
    except WorkspaceError:
        run_id = None
    return Health(status="ok", run_id=run_id)


@router.post("/flags", status_code=201, responses={200: {"model": FlagCreated, "description": "Already flagged by this account: nothing new recorded."}})
async def create_flag(body: FlagIn, response: Response, who: SignedIn, s: Served) -> FlagCreated:
    """Flag a sample (201), or find that this account flagged it already (200). Rate-limited per account."""
    ids, new = await record_flag(s, who, body, "api")
    if not new:
        response.status_code = 200
    return FlagCreated(id=ids[0], ids=ids)


@router.get("/flags")
def list_flags(
    who: SignedIn,
    s: Served,
    status: Literal["pending", "confirmed", "rejected"] | None = None,
    category: str | None = None,
    domain: Annotated[str | None, Query(description="A registrable domain (eTLD+1), e.g. `example.co.uk`.")] = None,
    before: Before = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> FlagList:
    """Flags, newest first: all of them for reviewers and maintainers, a contributor's own for contributors."""
    rows = s.crowd.flags(who, status=status, category=category, domain=domain, before=before, limit=limit)
    return FlagList(flags=shown_flags(s, who, rows))


@router.get("/flags/{flag_id}")
def get_flag(flag_id: FlagId, who: SignedIn, s: Served) -> FlagDetail:
    """One flag with its reports, reviews and audit trail (404 for a contributor's flag of someone else)."""
    detail = shown_detail(s, who, s.crowd.flag_detail(who, flag_id))
    detail["audit"] = [a | {"detail": json.loads(a["detail"])} for a in detail["audit"]]
    return FlagDetail(**detail)


@router.post("/flags/{flag_id}/review")
def review_flag(flag_id: FlagId, body: ReviewIn, who: SignedIn, s: Served) -> ReviewOut:
    """Confirm or reject a flag, with a reason code from the config (and, rejecting it as
    `duplicate_flag`, the flag it duplicates); reviewers and maintainers only (403 for
    contributors and for a reviewer who reported the flag; 409 while another reviewer's claim
    holds it). The decision releases the claim."""
    return ReviewOut(id=flag_id, status=s.crowd.review(who, flag_id, body.decision, body.reason, body.note, body.duplicate_of))


@router.post("/flags/{flag_id}/claim")
def claim_flag(flag_id: FlagId, who: SignedIn, s: Served) -> Claim:
    """Claim a flag for `crowd.claim_minutes` (renewing your own claim), as opening its page does;
    reviewers and maintainers who may decide it only (403 otherwise; 409 while another
    reviewer's claim holds it)."""
    return Claim(by=who.name, until=s.crowd.claim(who, flag_id))
