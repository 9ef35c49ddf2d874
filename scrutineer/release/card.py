"""A release's ``README.md``: a Hugging Face dataset card (``huggingface_hub.DatasetCard``), made
from its manifest.

Its YAML metadata gives the pretty name, the tags and the data files; its text the provenance, the
removal policy and counts, the detectors, the hash lists (never their entries) and the flood
guard's decisions on held entries (:mod:`scrutineer.core.flood`). It says the
original must be withdrawn: a diff of the original and the release shows every removed row,
restricted ones included (LAION withdrew LAION-5B before publishing Re-LAION-5B), and how far that
narrows the restricted rows (their anonymity set, :mod:`scrutineer.release.anonymity`).
"""

from __future__ import annotations

from huggingface_hub import DatasetCard, DatasetCardData


def dataset_card(m: dict) -> DatasetCard:
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
    guard = m.get("flood_guard", {})
    if guard.get("confirmed") or guard.get("dismissed"):
        decided = "\n".join(f"- hold `{h['hold_id']}` of `{h['bank']}` version {h['bank_version']} ({h['signal']}, {h['matches']} samples): "
                             f"{state} by {h['decided_by']} on {h['decided_at']}" for state in ("confirmed", "dismissed") for h in guard[state])
        text += ("\n## Flood guard\n\nA list entry matching more samples than `flood.max_matches` "
                 f"({guard['max_matches']}) was held for a maintainer's review. A confirmed entry's rows were removed as usual; a "
                 f"dismissed entry's findings removed no row.\n\n{decided}\n")
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n{text}")
