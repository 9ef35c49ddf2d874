"""The data contract: the Arrow schema of every batch, working file and store table, in one place.

Everything that writes or reads these names its columns from here: detectors build
:data:`FINDING` tables, the shard task writes its observation and judgement files in these
schemas, and the store's DDL is generated from :data:`TABLES` (:func:`ddl`). Each field carries
its meaning in its metadata (``doc``); ``python -c "from scrutineer.core import contract;
print(contract.describe())"`` prints them all.

Batches (what detectors see and return, and the per-shard working files):

- :data:`DETECT`: one row per sample, canonical columns; a metadata detector's ``detect`` input.
  A shard's *rows observation* (``rows.parquet``) is these columns plus the source columns the
  configured detectors read (:attr:`scrutineer.detectors.base.Detector.columns`).
- :data:`CONTENT`: one row per sample, its URL's latest check and the hashes of the bytes; a
  content detector's ``detect`` input, and a shard's *content observation* (``content.parquet``),
  row for row beside its rows observation.
- :data:`FETCH`: one row per check of a URL (``fetches.parquet`` beside ``content.parquet``).
- :data:`POLICY_FILE`: one row per policy file (robots.txt, ai.txt, tdmrep.json) of each origin
  the content observation used (``policy_files.parquet`` beside ``content.parquet``).
- :data:`FINDING`: what ``detect`` returns: one row per finding.
- :data:`JUDGEMENT`: a judgement's ``findings.parquet``: the findings with the observation they
  were judged from.
- :data:`SIGNATURE`: the first columns of every detector's signatures; a judgement's
  ``signatures.parquet`` adds ``shard_id`` and ``observation_id``, and the detector's
  corpus-level ``finalize`` groups them in the store.

Store tables (:data:`TABLES`): ``runs``, ``shards``, ``observations``, ``file_digests``,
``judgements``, ``judged_findings``, ``run_judgements``, ``fetches``, ``content_hashes``,
``policy_files``, ``banks``, ``releases``, ``holds``, ``hold_decisions``; and a view
(:data:`VIEWS`), ``findings``: every run's findings, each judgement's stored once
(``judged_findings``) and joined to the runs that use it (``run_judgements``).

Named runs of columns, so no one counts positions: :data:`SAMPLE_COLUMNS` (the first columns of
every per-sample batch), :data:`CANONICAL_COLUMNS` (a dataset's columns as detectors see them),
:data:`OUTCOME_COLUMNS` (a content row's check and hashes),
:data:`HASHED_COLUMNS` (what ``content_hashes`` keeps of a content row),
:data:`STORED_POLICY_FILE_COLUMNS` (what ``policy_files`` keeps of a policy file) and
:data:`SHARD_OUTCOME_COLUMNS` (what a shard task reports in ``shards``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

#: Field metadata key holding a column's meaning.
DOC = b"doc"
#: Field metadata key overriding the SQL type generated for a column (e.g. ``JSON``).
SQL_TYPE = b"sql"

UTC_TIME = pa.timestamp("us", tz="UTC")


def column(name: str, type_: pa.DataType, doc: str, sql: str | None = None) -> pa.Field:
    """A field with its meaning (and, where the Arrow type does not say it, its SQL type)."""
    meta = {DOC: doc.encode()}
    if sql:
        meta[SQL_TYPE] = sql.encode()
    return pa.field(name, type_, metadata=meta)


def json_column(name: str, doc: str) -> pa.Field:
    """A JSON object stored as text (query it with DuckDB's ``->>``)."""
    return column(name, pa.string(), doc, sql="JSON")


# --- shared columns ----------------------------------------------------------------------------

ROW_INDEX = column("row_index", pa.int64(), "Data row of the shard, from 0 in file order (header and blank lines are not rows).")
SAMPLE_ID = column("sample_id", pa.string(), "The source's key column as text, else '<shard_id>:<row_index>'.")
URL = column("url", pa.string(), "The sample's URL as the dataset gives it.")
SHARD_ID = column("shard_id", pa.string(), "The shard's path relative to the dataset root.")
RUN_ID = column("run_id", pa.string(), "The run (scan or rematch).")
OBSERVATION_ID = column("observation_id", pa.string(), "The observation set the row comes from (table observations).")
SHA256 = column("sha256", pa.string(), "SHA-256 of the image bytes, lowercase hex.")

#: The hashes of one image's bytes (DESIGN.md "Hash and drop").
HASHES = [
    column("md5", pa.string(), "MD5 of the bytes as served, lowercase hex."),
    column("sha1", pa.string(), "SHA-1 of the bytes as served, lowercase hex."),
    SHA256,
    column("pdq", pa.string(), "PDQ hash, 64 hex characters, first bit most significant (HMA's form); null if the bytes did not decode."),
    column("pdq_quality", pa.int32(), "PDQ quality, 0-100."),
    column("phash", pa.string(), "imagehash's 64-bit pHash, 16 hex characters."),
    column("width", pa.int32(), "Image width, pixels."),
    column("height", pa.int32(), "Image height, pixels."),
]
BYTES = column("bytes", pa.int64(), "Body length, bytes.")

#: Fetch status classes (DESIGN.md "Fetching"); ``scrutineer.observing.fetch`` documents each.
FETCH_STATUSES = ("alive", "dead", "moved", "not_image", "too_large", "transient", "blocked", "invalid")
#: The columns of one check of a URL.
CHECK = [
    column("status", pa.string(), f"Status class of the check: {', '.join(FETCH_STATUSES)}."),
    column("http_status", pa.int32(), "HTTP status of the last response, if any."),
    column("final_url", pa.string(), "URL of the last hop (after redirects)."),
    column("content_type", pa.string(), "Content-Type of the last response."),
    column("error", pa.string(), "What went wrong, in words (never the bytes)."),
    column("x_robots_tag", pa.string(), "The response's X-Robots-Tag header."),
]

#: What a sample's image says about AI training beyond X-Robots-Tag (scrutineer.observing.optouts reads them).
OPT_OUT_SIGNALS = [
    column("tdm_reservation", pa.string(), "The last response's tdm-reservation header (W3C TDMRep)."),
    column("tdm_policy", pa.string(), "The last response's tdm-policy header (W3C TDMRep)."),
    column("content_usage", pa.string(), "The last response's Content-Usage header (IETF aipref)."),
    column("link", pa.string(), "The last response's Link header (an RSL licence is a link with rel=\"license\")."),
    json_column("c2pa", "The C2PA/CAWG training-mining assertion in the image bytes: label, entries and their use, validation state."),
    json_column("iptc", "The IPTC Data Mining property (plus:DataMining) in the image's XMP, with plus:OtherConstraints."),
]

# --- batches and working files -------------------------------------------------------------------

#: The columns naming a sample of a shard, first in every per-sample batch.
SAMPLE = [ROW_INDEX, SAMPLE_ID, URL]
SAMPLE_COLUMNS = tuple(f.name for f in SAMPLE)

#: The columns a dataset's own are mapped to (``dataset.columns``), as text.
CANONICAL = [
    SAMPLE_ID,
    URL,
    column("caption", pa.string(), "The sample's caption."),
    column("license", pa.string(), "The sample's licence as the dataset gives it."),
]
CANONICAL_COLUMNS = tuple(f.name for f in CANONICAL)

DETECT = pa.schema([ROW_INDEX, *CANONICAL])

#: A content row's columns after :data:`SAMPLE`: its URL's latest check (or its tar member) and
#: the hashes of the bytes.
OUTCOME = [
    *CHECK,
    column("checks", pa.int32(), "How many of the URL's latest checks agree with the last, over this scan and the rechecks since (0: read from a tar, no check)."),
    column("checked_at", UTC_TIME, "When the last check started (null: read from a tar, no check)."),
    BYTES,
    *HASHES,
    column("pdq_dihedral", pa.list_(pa.string()), "With fetch.pdq_dihedral: the PDQ hashes of the image's 7 other rotations and flips (scrutineer.observing.hashing.PDQ_DIHEDRAL order after 'original'), else null."),
    *OPT_OUT_SIGNALS,
]
OUTCOME_COLUMNS = tuple(f.name for f in OUTCOME)

CONTENT = pa.schema([*SAMPLE, *OUTCOME])

#: What the store's ``content_hashes`` keeps of a content row.
HASHED = [*SAMPLE, *HASHES, BYTES]
HASHED_COLUMNS = tuple(f.name for f in HASHED)

POLICY_FILE = pa.schema(
    [
        column("origin", pa.string(), "scheme://host[:port] the file belongs to."),
        column("name", pa.string(), "robots.txt, ai.txt, tdmrep.json, or rsl:<URL> for an RSL licence."),
        URL,
        column("fetched_at", UTC_TIME, "When the read started (a read taken from the policy cache keeps its own time)."),
        column("status", pa.string(), f"Status class of the read: {', '.join(FETCH_STATUSES)}."),
        column("http_status", pa.int32(), "HTTP status of the last response, if any."),
        column("content_type", pa.string(), "Content-Type of the last response."),
        column("sha256", pa.string(), "SHA-256 of the body as served (2xx only), lowercase hex."),
        BYTES,
        column("text", pa.string(), "The body as UTF-8 text (2xx only); not in the store's policy_files table."),
        column("error", pa.string(), "What went wrong, in words."),
    ]
)

FETCH = pa.schema(
    [
        URL,
        column("fetched_at", UTC_TIME, "When the check started."),
        *CHECK,
        BYTES,
        column("elapsed", pa.float64(), "Seconds over every attempt of the check."),
        column("attempts", pa.int32(), "Requests made (retries included)."),
    ]
)

FINDING = pa.schema(
    [
        SHARD_ID,
        ROW_INDEX,
        SAMPLE_ID,
        URL,
        column("detector", pa.string(), "Name of the detector (its registry key and config key)."),
        column("detector_version", pa.string(), "The detector's version."),
        column("reason", pa.string(), "Reason code, e.g. hash_match.pdq or duplicate.url."),
        json_column("evidence", "Why, as a JSON object; its keys depend on the detector."),
        column("restricted", pa.bool_(), "A hash-bank match or a confirmed flag of a sensitive crowd category: its URL is shown only in the takedown manifest and to reviewers, counted elsewhere."),
    ]
)

JUDGEMENT = pa.schema([OBSERVATION_ID, *FINDING])

SIGNATURE = pa.schema(SAMPLE)


def stored_signatures(signatures: pa.Table, shard_id: str, observation_id: str) -> pa.Table:
    """A shard's ``signatures`` (:data:`SIGNATURE` and a detector's own columns) as a judgement
    stores them: ``shard_id`` and ``observation_id`` (the observation judged) appended."""
    n = signatures.num_rows
    return signatures.append_column(SHARD_ID, pa.repeat(pa.scalar(shard_id), n)).append_column(OBSERVATION_ID, pa.repeat(pa.scalar(observation_id), n))

# --- store tables ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A store table: its name, columns, primary key and meaning."""

    name: str
    schema: pa.Schema
    doc: str
    primary_key: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        return self.schema.names


RUNS = Table(
    "runs",
    pa.schema(
        [
            RUN_ID,
            column("kind", pa.string(), "scan (observes what is not stored yet), rematch (re-judges stored observations only) or recheck (checks due links again)."),
            column("dataset", pa.string(), "dataset.name of the config."),
            column("started_at", UTC_TIME, "Start of the run."),
            column("finished_at", UTC_TIME, "End of the run."),
            column("status", pa.string(), "running, completed, partial (a shard failed), inconclusive (the network went down), failed or interrupted (the process died)."),
            column("tool_version", pa.string(), "Scrutineer's version."),
            json_column("config", "The resolved config."),
            json_column("detectors", "Per detector: version and params."),
            json_column("banks", "Per bank: name, source, version, signal type, entries, sha256 (never the entries)."),
        ]
    ),
    "One row per scan or rematch.",
    ("run_id",),
)

#: The columns of a ``shards`` row that its shard task reports (``scrutineer.flows.shard.ShardResult``
#: has an attribute of each name); the others name the run and the shard.
SHARD_OUTCOME = [
    column("sha256", pa.string(), "SHA-256 of the shard's bytes."),
    column("rows_observation", pa.string(), "Observation set of the rows read."),
    column("content_observation", pa.string(), "Observation set of the fetches and content hashes, if a content detector ran."),
    column("rows", pa.int64(), "Rows in the shard."),
    column("status", pa.string(), "observed (read now), judged (observations reused, findings re-derived), reused (nothing recomputed), failed or inconclusive."),
    column("error", pa.string(), "Why the shard failed, naming the file and row where known."),
    column("seconds", pa.float64(), "Wall time of the shard task."),
]
SHARD_OUTCOME_COLUMNS = tuple(f.name for f in SHARD_OUTCOME)

SHARDS = Table(
    "shards",
    pa.schema(
        [
            RUN_ID,
            SHARD_ID,
            column("location", pa.string(), "Path (or Hub id) of the shard."),
            column("format", pa.string(), "Shard format."),
            *SHARD_OUTCOME,
        ]
    ),
    "One row per shard per run.",
    ("run_id", "shard_id"),
)

OBSERVATIONS = Table(
    "observations",
    pa.schema(
        [
            OBSERVATION_ID,
            column("kind", pa.string(), "rows (the samples read) or content (fetches and content hashes)."),
            SHARD_ID,
            column("shard_sha256", pa.string(), "SHA-256 of the shard's bytes."),
            json_column("key", "What the observation is keyed by: shard bytes, read options and, for content, fetch options."),
            column("rows", pa.int64(), "Rows observed."),
            column("observed_at", UTC_TIME, "When it was made."),
            column("run_id", pa.string(), "The run that made it."),
        ]
    ),
    "What scans saw, cached per shard: observations never depend on banks or detector parameters.",
    ("observation_id",),
)

FILE_DIGESTS = Table(
    "file_digests",
    pa.schema(
        [
            column("path", pa.string(), "Absolute path of a shard (or webdataset tar)."),
            column("size", pa.int64(), "Size, bytes."),
            column("mtime_ns", pa.int64(), "Modification time, nanoseconds since the epoch."),
            column("inode", pa.int64(), "Inode number."),
            column("sha256", pa.string(), "SHA-256 of the bytes when the file had this size, time and inode."),
        ]
    ),
    "A file's SHA-256 by its stat, so an unchanged shard is not read to be recognised (as git's index and rsync do).",
    ("path",),
)

JUDGEMENT_ID = column(
    "judgement_id", pa.string(),
    "A judgement: a detector's of a shard's observations (its judgements/<id> set, scrutineer.flows.plan), a corpus detector's "
    "finalize over its signature sets (ScanPlan.finalize_key), or a sync's confirmed crowd flags (keyed by their rows); its findings are stored once.",
)

JUDGEMENTS = Table(
    "judgements",
    pa.schema(
        [
            JUDGEMENT_ID,
            column("detector", pa.string(), "The detector whose judgement it is (crowd: the confirmed crowd flags)."),
            column("findings", pa.int64(), "Its findings (rows of judged_findings)."),
            column("loaded_by", pa.string(), "The run that stored it (later runs that use it only reference it: run_judgements)."),
            column("loaded_at", UTC_TIME, "When it was stored."),
        ]
    ),
    "Every judgement whose findings the store holds, once however many runs use it.",
    ("judgement_id",),
)

JUDGED_FINDINGS = Table(
    "judged_findings",
    pa.schema([JUDGEMENT_ID, *JUDGEMENT]),
    "One row per finding of a judgement, stored once; read them through the findings view, which adds each run that uses it.",
)

RUN_JUDGEMENTS = Table(
    "run_judgements",
    pa.schema([RUN_ID, JUDGEMENT_ID]),
    "Which judgements' findings each run has: a rescan references the judgements it reuses instead of storing their findings again.",
    ("run_id", "judgement_id"),
)

FETCHES = Table(
    "fetches",
    pa.schema([OBSERVATION_ID, SHARD_ID, *FETCH]),
    "One row per check of a URL, with its time: link liveness keeps a history.",
)

CONTENT_HASHES = Table(
    "content_hashes",
    pa.schema([OBSERVATION_ID, SHARD_ID, *HASHED]),
    "One row per sample whose bytes were hashed (the bytes themselves are never stored). Restricted.",
)

#: What the store's ``policy_files`` keeps of a policy file: all but its ``text``.
STORED_POLICY_FILE = [f for f in POLICY_FILE if f.name != "text"]
STORED_POLICY_FILE_COLUMNS = tuple(f.name for f in STORED_POLICY_FILE)

POLICY_FILES = Table(
    "policy_files",
    pa.schema([OBSERVATION_ID, SHARD_ID, *STORED_POLICY_FILE]),
    "One row per policy file a content observation used, with when it was read; the texts stay in the observation's policy_files.parquet.",
)

BANKS = Table(
    "banks",
    pa.schema(
        [
            column("name", pa.string(), "Bank name from the config."),
            column("source", pa.string(), "Who supplied the list."),
            column("version", pa.string(), "The supplier's version label."),
            column("signal_type", pa.string(), "HMA signal type of the entries."),
            column("sha256", pa.string(), "SHA-256 of the bank file; its entries are kept in <workspace>/banks/<sha256>.parquet."),
            column("entries", pa.int64(), "Distinct entries."),
            column("registered_at", UTC_TIME, "When the store first saw this file."),
        ]
    ),
    "Every bank file a run used (restricted entries are not in the store).",
    ("name", "sha256"),
)

RELEASES = Table(
    "releases",
    pa.schema(
        [
            column("release_id", pa.string(), "Release name and time."),
            RUN_ID,
            column("variant", pa.string(), "Release variant."),
            column("path", pa.string(), "Release directory."),
            column("created_at", UTC_TIME, "When it was written."),
            column("manifest_sha256", pa.string(), "SHA-256 of its manifest.json."),
        ]
    ),
    "One row per release written.",
    ("release_id",),
)

#: The columns naming a bank entry, as a bank-match finding's evidence names them (scrutineer.core.flood).
BANK_ENTRY = [
    column("bank", pa.string(), "Bank name from the config."),
    column("bank_version", pa.string(), "The bank's version label."),
    column("signal", pa.string(), "HMA signal type of the entry."),
    column("entry", pa.string(), "The bank entry (a hash), as the findings' evidence gives it. Restricted."),
]
HOLD_ID = column("hold_id", pa.string(), "Short id of a held bank entry: a digest of bank, bank_version, signal and entry (scrutineer.core.flood.hold_id).")

HOLDS = Table(
    "holds",
    pa.schema(
        [
            RUN_ID,
            HOLD_ID,
            column("detector", pa.string(), "The detector whose findings matched the entry."),
            *BANK_ENTRY,
            column("matches", pa.int64(), "Samples of the run the entry's findings match."),
            column("max_matches", pa.int64(), "The most samples an entry may match without a hold in this run (flood.max_matches resolved)."),
            column("hosts", pa.int64(), "Distinct hosts of the matched samples' URLs."),
            column("domains", pa.int64(), "Distinct registrable domains of the matched samples' URLs."),
            column("held_at", UTC_TIME, "When the run's load held it."),
        ]
    ),
    "A bank entry of a run whose findings matched more samples than flood.max_matches: its findings do not act until a "
    "maintainer confirms it (scrutineer.core.flood). Restricted.",
    ("run_id", "hold_id"),
)

HOLD_DECISIONS = Table(
    "hold_decisions",
    pa.schema(
        [
            HOLD_ID,
            *BANK_ENTRY,
            column("decision", pa.string(), "confirmed (the entry's findings act) or dismissed (they never act)."),
            column("decided_by", pa.string(), "The maintainer's account name, or cli."),
            column("decided_at", UTC_TIME, "When it was decided."),
            column("note", pa.string(), "The maintainer's note."),
        ]
    ),
    "The maintainers' decisions on held bank entries, copied from the crowd store by sync; keyed by the entry, so one "
    "holds for every run of the same bank version. Restricted.",
    ("hold_id",),
)

TABLES = {t.name: t for t in (RUNS, SHARDS, OBSERVATIONS, FILE_DIGESTS, JUDGEMENTS, JUDGED_FINDINGS, RUN_JUDGEMENTS, FETCHES, CONTENT_HASHES,
                              POLICY_FILES, BANKS, RELEASES, HOLDS, HOLD_DECISIONS)}


@dataclass(frozen=True)
class View:
    """A store view: its name, columns, meaning and the query over store tables that makes it."""

    name: str
    schema: pa.Schema
    doc: str
    query: str

    @property
    def columns(self) -> list[str]:
        return self.schema.names


FINDINGS = View(
    "findings",
    pa.schema([RUN_ID, *JUDGEMENT]),
    "One row per finding of a run; observation_id names the observations it was judged from. A view: each judgement's findings "
    "(judged_findings) with each run that uses it (run_judgements).",
    f"SELECT r.run_id, {', '.join('f.' + f.name for f in JUDGEMENT)} FROM run_judgements r JOIN judged_findings f USING (judgement_id)",
)

VIEWS = {v.name: v for v in (FINDINGS,)}

_SQL_TYPES = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    UTC_TIME: "TIMESTAMPTZ",
}


def sql_type(field: pa.Field) -> str:
    """The DuckDB type of a contract field."""
    meta = field.metadata or {}
    return meta[SQL_TYPE].decode() if SQL_TYPE in meta else _SQL_TYPES[field.type]


def ddl(table: Table | View) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for a store table, generated from its schema; ``CREATE OR
    REPLACE VIEW`` for a view."""
    if isinstance(table, View):
        return f"CREATE OR REPLACE VIEW {table.name} AS {table.query}"
    cols = [f"{f.name} {sql_type(f)}" for f in table.schema]
    if table.primary_key:
        cols.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
    return f"CREATE TABLE IF NOT EXISTS {table.name} ({', '.join(cols)})"


def describe() -> str:
    """Every store table and view and its columns with their meanings, as text."""
    lines = []
    for t in [*TABLES.values(), *VIEWS.values()]:
        lines.append(f"{t.name}: {t.doc}")
        lines += [f"  {f.name} {sql_type(f)}: {f.metadata[DOC].decode()}" for f in t.schema]
    return "\n".join(lines)
