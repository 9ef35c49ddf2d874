"""RE- releases: the input dataset minus the rows a variant's policy removes.

``<workspace>/releases/RE-<dataset>-<variant>/`` holds:

- ``data/<shard_id>``: every input shard at the same relative path, in the same format, with the
  same column names, types and order (parquet keeps its schema metadata, pandas' included), the
  removed rows gone and the order kept; JSONL and unquoted (QUOTE_NONE) CSV/TSV shards are their
  kept lines byte for byte. (``hf`` shards are written as parquet. A ``webdataset``
  release is its img2dataset parquet files: Scrutineer never writes image bytes, so the tars are
  not rewritten; the removed keys tell a maintainer which members to drop.)
- ``removed.parquet``, only when the variant sets ``list_removed``: ``sample_id, shard_id,
  row_index`` of the removed rows anyone holding the original can recompute (a recomputable
  reason of the policy removes them, :mod:`scrutineer.core.policy`), restricted ones among them; no
  URLs, no reasons. No other removal is ever listed: with the original, original minus release
  minus such a list leaves exactly the restricted rows (issue 23: 5 of 5).
- ``manifest.json``: tool version, time, run id, policy, detectors (versions, params), banks
  (name, source, version, sha256, entry count, never entries), removal counts (in all, listed,
  restricted, recomputable, per policy entry), the anonymity set of the restricted rows (below),
  and each input and output shard with its sha256 and row count.
- ``README.md``: a Hugging Face dataset card (``huggingface_hub.DatasetCard``: pretty name, tags
  and data files in its YAML metadata) with the policy, counts, detectors and banks. It says the
  original must be withdrawn: a diff of the original and the release shows every removed row,
  restricted ones included (LAION withdrew LAION-5B before publishing Re-LAION-5B), and how far
  that narrows the restricted rows.

The **anonymity set** of a release's restricted rows is its removed rows that no recomputable
reason of the policy explains. A removed row that a recomputable reason also removes is explained
to whoever holds the original and gives a restricted row no cover (a restricted row so explained is
not told apart from the others); the rest look alike to them (dead links, crowd decisions and
hash-list matches). The restricted rows such an outsider could
single out are the restricted rows inside that set; the manifest and the card give its size and
how many of them are restricted. A release whose restricted rows are more than
``release.max_restricted_share`` of that set is refused, unless its variant acknowledges it
(``acknowledge_restricted_share``).

The directory is built under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import math
import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from huggingface_hub import DatasetCard, DatasetCardData

from scrutineer import __version__
from scrutineer.core import store
from scrutineer.core.config import Config
from scrutineer.core.contract import RELEASES
from scrutineer.core.errors import ConfigError
from scrutineer.core.files import (
    file_sha256,
    replace_dir,
    sweep_temporaries,
    temporary_sibling,
)
from scrutineer.core.policy import reason_filter_sql, recomputable_sql
from scrutineer.formats.sources import (
    Shard,
    csv_dialect,
    iter_jsonl_lines,
    iter_raw_batches,
    load_coco,
)


class ReleaseError(ConfigError):
    """The release cannot be built (no finished scan, a partial scan, a shard changed since)."""


def build_release(cfg: Config, variant: str) -> Path:
    """Write the variant's release from the dataset's latest completed scan. The CLI and the
    deployed flow import the confirmed crowd flags into it first (:func:`scrutineer.crowd.sync.sync_latest`).

    Returns:
        The release directory.

    Raises:
        ReleaseError: unknown variant, a release directory outside ``<workspace>/releases`` (a
            dataset or variant name holding a ``/``), no completed scan, restricted rows more than
            ``release.max_restricted_share`` of the anonymity set and not acknowledged (one line:
            the numbers, the limit and the key that acknowledges), or a shard's bytes changed
            since the scan.
        ShardError: a shard cannot be read.
    """
    if variant not in cfg.release.variants:
        raise ReleaseError(f"unknown release variant {variant!r}; configured: {sorted(cfg.release.variants) or 'none'}")
    policy = cfg.release.variants[variant]
    patterns = policy.remove
    name = f"RE-{cfg.dataset.name}-{variant}"
    out = cfg.workspace / "releases" / name
    if out.parent != cfg.workspace / "releases":
        raise ReleaseError(f"release {name!r} would be written outside {cfg.workspace / 'releases'}; dataset and variant names must be plain names")
    con = store.connect(cfg.workspace)
    try:
        run_id, status = store.latest_run(con, cfg.dataset.name, cfg.workspace)
        if status != "completed":
            raise ReleaseError(f"the latest scan {run_id} is {status}: fix the failed shards and rescan before releasing")
        where, params = reason_filter_sql(patterns)
        recomputable, recomputable_params = recomputable_sql(patterns)
        # Each removed row, whether any of its findings in the run is restricted, and whether a
        # reason of the policy that an outsider can recompute removes it.
        removed = con.sql(
            f"SELECT sample_id, shard_id, row_index, bool_or(restricted) AS restricted, bool_or({recomputable}) AS recomputable "
            f"FROM findings WHERE run_id = ? GROUP BY sample_id, shard_id, row_index HAVING bool_or({where}) ORDER BY shard_id, row_index",
            params=[*recomputable_params, run_id, *params],
        ).to_arrow_table()
        anonymity = _anonymity_set(removed, cfg, variant)
        listed = removed.filter(removed["recomputable"]).select(["sample_id", "shard_id", "row_index"]) if policy.list_removed else None
        if (looser := policy.stricter_than) is not None:
            _check_stricter(con, run_id, cfg, variant, looser)
        by_pattern = {}
        for p in patterns:
            w, ps = reason_filter_sql([p])
            by_pattern[p] = con.sql(
                f"SELECT count(*) FROM (SELECT DISTINCT shard_id, row_index FROM findings WHERE run_id = ? AND {w})",
                params=[run_id, *ps],
            ).fetchall()[0][0]
        shards = con.sql(
            "SELECT shard_id, location, format, sha256, rows FROM shards WHERE run_id = ? ORDER BY shard_id", params=[run_id]
        ).fetchall()
        detectors, banks = con.sql("SELECT detectors, banks FROM runs WHERE run_id = ?", params=[run_id]).fetchall()[0]

        out.parent.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(out.parent)
        tmp = temporary_sibling(out)
        (tmp / "data").mkdir(parents=True)
        try:
            entries = []
            for shard_id, location, fmt, sha256, rows in shards:
                shard = Shard(shard_id, location, fmt)
                if shard.sha256() != sha256:
                    raise ReleaseError(f"{location} changed since scan {run_id}; rescan before releasing")
                drop = removed.filter(pc.equal(removed["shard_id"], shard_id))["row_index"].to_numpy()
                rel_out = shard_id if fmt != "hf" or shard_id.endswith(".parquet") else _hf_out_name(shard_id)
                dest = tmp / "data" / rel_out
                dest.parent.mkdir(parents=True, exist_ok=True)
                rows_in, rows_out = write_filtered(shard, cfg, drop, dest)
                if rows_in != rows:
                    raise ReleaseError(f"{location}: read {rows_in} rows where scan {run_id} read {rows}")
                entries.append(
                    {
                        "shard_id": shard_id,
                        "format": fmt,
                        "input": {"sha256": sha256, "rows": rows_in},
                        "output": {"path": f"data/{rel_out}", "sha256": file_sha256(dest), "rows": rows_out},
                        "removed_rows": rows_in - rows_out,
                    }
                )
            if listed is not None:
                pq.write_table(listed, tmp / "removed.parquet")
            manifest = {
                "release": name,
                "dataset": cfg.dataset.name,
                "variant": variant,
                "tool": {"name": "scrutineer", "version": __version__},
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "run_ids": [run_id],
                "policy": policy.model_dump(exclude_none=True) | {"max_restricted_share": cfg.release.max_restricted_share},
                "detectors": json.loads(detectors),
                "banks": json.loads(banks),
                "removed": {
                    "rows": removed.num_rows,
                    "listed": 0 if listed is None else listed.num_rows,
                    "restricted": pc.sum(removed["restricted"]).as_py() or 0,
                    "recomputable": pc.sum(removed["recomputable"]).as_py() or 0,
                    "by_policy_entry": by_pattern,
                    "anonymity_set": anonymity,
                    "file": None if listed is None else {"path": "removed.parquet", "sha256": file_sha256(tmp / "removed.parquet")},
                },
                "rows": {"input": sum(e["input"]["rows"] for e in entries), "output": sum(e["output"]["rows"] for e in entries)},
                "shards": entries,
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            _card(manifest).save(tmp / "README.md")
            replace_dir(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        release_id = f"{name}@{manifest['created_at']}-{secrets.token_hex(2)}"
        row = {"release_id": release_id, "run_id": run_id, "variant": variant, "path": str(out), "created_at": datetime.now(UTC),
               "manifest_sha256": file_sha256(out / "manifest.json")}
        store.insert(con, RELEASES, [row])
    finally:
        con.close()
    return out


def _anonymity_set(removed: pa.Table, cfg: Config, variant: str) -> dict:
    """The anonymity set of the restricted rows (module docstring), checked against
    ``release.max_restricted_share`` and the variant's ``acknowledge_restricted_share``.

    Args:
        removed: one row per removed row, with bool columns ``restricted`` and ``recomputable``.

    Returns:
        ``{"rows": n, "restricted": k, "restricted_share": k / n}`` (the share rounded to 4
        places; 0 for an empty set).

    Raises:
        ReleaseError: the share is over both the limit and the acknowledgement; one line with the
            numbers, the limit and the config key that acknowledges.
    """
    hidden = removed.filter(pc.invert(removed["recomputable"]))
    rows, restricted = hidden.num_rows, pc.sum(hidden["restricted"]).as_py() or 0
    share = restricted / rows if rows else 0.0
    limit, acknowledged = cfg.release.max_restricted_share, cfg.release.variants[variant].acknowledge_restricted_share
    if share > limit and (acknowledged is None or share > acknowledged):
        key = f"release.variants.{variant}.acknowledge_restricted_share"
        over = f"release.max_restricted_share ({limit})" + (f" and {key} ({acknowledged})" if acknowledged is not None else "")
        raise ReleaseError(
            f"release {variant} refused: {restricted} of the {rows} removed rows no recomputable reason explains are restricted "
            f"({share:.0%}), more than {over}: whoever holds the original narrows them down to these {rows} rows. "
            f"Set {key}: {math.ceil(share * 100) / 100} to release anyway"
        )
    return {"rows": rows, "restricted": restricted, "restricted_share": round(share, 4)}


def _check_stricter(con, run_id: str, cfg: Config, variant: str, looser: str) -> None:
    """Refuse variant ``variant`` if a row variant ``looser`` removes would stay in it: its output
    must be a subset of ``looser``'s (``stricter_than``), on the run's findings themselves.

    Raises:
        ReleaseError: such rows exist (the message counts them and names the reasons).
    """
    if looser not in cfg.release.variants:
        raise ReleaseError(f"release.variants.{variant}.stricter_than: no variant {looser!r}")
    mine, mine_params = reason_filter_sql(cfg.release.variants[variant].remove)
    theirs, their_params = reason_filter_sql(cfg.release.variants[looser].remove)
    rows, reasons = con.sql(
        f"WITH theirs AS (SELECT shard_id, row_index, reason FROM findings WHERE run_id = ? AND {theirs}), "
        f"mine AS (SELECT DISTINCT shard_id, row_index FROM findings WHERE run_id = ? AND {mine}) "
        "SELECT count(DISTINCT (t.shard_id, t.row_index)), list(DISTINCT t.reason ORDER BY t.reason) "
        "FROM theirs t ANTI JOIN mine m USING (shard_id, row_index)",
        params=[run_id, *their_params, run_id, *mine_params],
    ).fetchall()[0]
    if rows:
        raise ReleaseError(f"release {variant} is declared stricter_than {looser}, but would keep {rows} rows that {looser} removes "
                           f"(reasons {reasons}): add them to its `remove`")


def _hf_out_name(shard_id: str) -> str:
    return shard_id.replace("/", "__") + ".parquet"


def write_filtered(shard: Shard, cfg: Config, drop: np.ndarray, dest: Path) -> tuple[int, int]:
    """Copy a shard to ``dest`` without the rows whose ``row_index`` is in ``drop``.

    Args:
        drop: sorted int64 row indices to leave out.

    Returns:
        (rows in, rows out).

    Raises:
        ShardError: the shard cannot be read.
    """
    writers = {"parquet": _write_arrow, "webdataset": _write_arrow, "hf": _write_arrow, "csv": _write_csv, "tsv": _write_csv, "jsonl": _write_jsonl, "coco": _write_coco}
    return writers[shard.format](shard, cfg, drop, dest)


def _kept(batches: Iterator[pa.RecordBatch], drop: np.ndarray) -> Iterator[tuple[int, pa.RecordBatch]]:
    start = 0
    for batch in batches:
        idx = np.arange(start, start + batch.num_rows)
        keep = ~np.isin(idx, drop, assume_unique=True)
        start += batch.num_rows
        yield batch.num_rows, batch.filter(pa.array(keep))


def _write_arrow(shard: Shard, cfg: Config, drop: np.ndarray, dest: Path) -> tuple[int, int]:
    schema = pq.read_schema(shard.location) if shard.format in ("parquet", "webdataset") else None
    rows_in = rows_out = 0
    writer = None
    try:
        for n, batch in _kept(iter_raw_batches(shard, cfg.dataset), drop):
            if writer is None:
                writer = pq.ParquetWriter(dest, schema or batch.schema)
            rows_in += n
            rows_out += batch.num_rows
            writer.write_table(pa.Table.from_batches([batch]).cast(writer.schema))
        if writer is None:
            writer = pq.ParquetWriter(dest, schema or pa.schema([]))
    finally:
        if writer is not None:
            writer.close()
    return rows_in, rows_out


def _write_csv(shard: Shard, cfg: Config, drop: np.ndarray, dest: Path) -> tuple[int, int]:
    delimiter, header, quoting = csv_dialect(shard, cfg.dataset)
    if not quoting:
        return _write_lines(shard, header, drop, dest)
    rows_in = rows_out = 0
    writer = None
    try:
        for n, batch in _kept(iter_raw_batches(shard, cfg.dataset), drop):
            if writer is None:
                writer = pacsv.CSVWriter(
                    dest, batch.schema, write_options=pacsv.WriteOptions(include_header=header, delimiter=delimiter, quoting_style="needed")
                )
            rows_in += n
            rows_out += batch.num_rows
            writer.write_batch(batch)
        if writer is None:
            dest.write_bytes(b"")
    finally:
        if writer is not None:
            writer.close()
    return rows_in, rows_out


def _write_lines(shard: Shard, header: bool, drop: np.ndarray, dest: Path) -> tuple[int, int]:
    """Copy an unquoted (QUOTE_NONE) CSV/TSV shard line by line, leaving out the dropped rows'
    lines, so the release is the input's bytes minus those lines.

    Rows are counted as pyarrow's reader counts them (:func:`scrutineer.formats.sources.iter_raw_batches`):
    a line ends at ``\\n``, ``\\r\\n`` or ``\\r``; empty lines are not rows (they are kept); with
    ``header``, the first non-empty line is the header (kept).
    """
    dropped = set(drop.tolist())
    rows_in = rows_out = 0
    # newline="": lines end as above and keep their ending; latin-1 decodes each byte to one
    # character, so encoding a line gives back exactly the bytes read.
    with open(shard.location, encoding="latin-1", newline="") as f, open(dest, "wb") as out:
        for line in f:
            if not line.rstrip("\r\n"):
                out.write(line.encode("latin-1"))
            elif header:
                out.write(line.encode("latin-1"))
                header = False
            else:
                if rows_in not in dropped:
                    out.write(line.encode("latin-1"))
                    rows_out += 1
                rows_in += 1
    return rows_in, rows_out


def _write_jsonl(shard: Shard, cfg: Config, drop: np.ndarray, dest: Path) -> tuple[int, int]:
    dropped = set(drop.tolist())
    rows_in = rows_out = 0
    with open(dest, "wb") as out:
        for row_index, (_, line) in enumerate(iter_jsonl_lines(shard.location)):
            rows_in += 1
            if row_index not in dropped:
                out.write(line if line.endswith(b"\n") else line + b"\n")
                rows_out += 1
    return rows_in, rows_out


def _write_coco(shard: Shard, cfg: Config, drop: np.ndarray, dest: Path) -> tuple[int, int]:
    """Annotations (rows) removed; an image goes too once every one of its captions is removed."""
    doc = load_coco(shard.location)
    dropped = set(drop.tolist())
    anns = doc["annotations"]
    kept = [a for i, a in enumerate(anns) if i not in dropped]
    had = {a.get("image_id") for a in anns}
    still = {a.get("image_id") for a in kept}
    doc["images"] = [img for img in doc["images"] if img.get("id") not in had or img.get("id") in still]
    doc["annotations"] = kept
    dest.write_text(json.dumps(doc, ensure_ascii=False))
    return len(anns), len(kept)


def _card(m: dict) -> DatasetCard:
    """The release's dataset card, from its manifest ``m``: Hugging Face metadata (pretty name,
    tags, the data files) and the provenance, removal policy and counts, the withdrawal notice,
    the anonymity set of the restricted rows, the detectors, and the hash lists without their
    entries."""
    data = DatasetCardData(
        pretty_name=m["release"], tags=["scrutineer", "filtered"], configs=[{"config_name": "default", "data_files": "data/**"}]
    )
    removed = m["removed"]
    policy = "\n".join(f"- `{p}`: {n} rows" for p, n in removed["by_policy_entry"].items())
    if m["policy"]["keep_restricted"]:
        policy += (
            "\n\nThis variant keeps rows with restricted findings that the list above does not cover, on purpose "
            "(`keep_restricted: true` in its config)."
        )
    detectors = "\n".join(f"- `{name}` version {d['version']}" for name, d in m["detectors"].items())
    banks = "\n".join(
        f"- `{b['name']}` from {b['source']}, version {b['version']}, {b['entries']} entries, file sha256 `{b['sha256']}`" for b in m["banks"]
    )
    if removed["file"]:
        listing = (f"`removed.parquet` (sample_id, shard_id, row_index) lists the {removed['listed']} removed rows anyone holding the "
                   "original can recompute, restricted ones among them; the other removals are counted, never listed.")
    else:
        listing = "Removed rows are counted, never listed."
    hidden, limit = removed["anonymity_set"], m["policy"]["max_restricted_share"]
    if hidden["rows"] and hidden["restricted"] / hidden["rows"] > limit:
        verdict = (f"That is more than the limit of {limit} (`release.max_restricted_share`), on purpose: this variant acknowledges "
                   f"up to {m['policy']['acknowledge_restricted_share']} (`acknowledge_restricted_share` in its config).")
    else:
        verdict = f"The limit is {limit} (`release.max_restricted_share`)."
    text = f"""
# {m["release"]}

A filtered re-release of `{m["dataset"]}` produced by Scrutineer {m["tool"]["version"]} on {m["created_at"]}
from scan `{m["run_ids"][0]}`, variant `{m["variant"]}`.

The shards under `data/` have the same paths, columns and row order as the input, with the removed rows
gone. {listing} `manifest.json` gives the sha256 of every input and output shard.

## The original must be withdrawn

Anyone holding both the original dataset and this release can diff them and find every removed row, the
restricted ones included. The original must therefore be withdrawn from distribution when this release is
published, as LAION withdrew LAION-5B (December 2023) before publishing Re-LAION-5B (August 2024).

## Anonymity set of the restricted rows

Of the {removed["rows"]} removed rows, {removed["recomputable"]} are removed for a reason anyone holding the original can
recompute from it (a duplicate, a licence). The other {hidden["rows"]}, removed only for reasons an outsider cannot recompute
(dead links, crowd decisions, hash-list matches), are the anonymity set of the restricted rows: {hidden["restricted"]} of them are restricted ({hidden["restricted_share"]:.0%}).
Whoever diffs the original against this release can narrow the restricted rows down to these {hidden["rows"]} rows, and
no further. {verdict}

## Removal policy

Rows with a finding whose reason matches one of these were removed:

{policy}

Rows in: {m["rows"]["input"]}. Rows removed: {removed["rows"]} ({removed["listed"]} listed, {removed["restricted"]} restricted).
Rows out: {m["rows"]["output"]}. A row removed for several reasons is counted once in the total.

## Detectors

{detectors}
"""
    if banks:
        text += f"\n## Hash lists\n\nMatched by hash only; the list entries are not published.\n\n{banks}\n"
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n{text}")
