"""A release's ``README.md``: a Hugging Face dataset card (``huggingface_hub.DatasetCard``), made
from its manifest.

Its YAML metadata gives the pretty name, the tags, the data files and, when the dataset declares
one, the licence (:func:`hf_license`); its text the provenance, the removal policy and counts, the
opt-out policy, the detectors, the hash lists (never their entries) and the flood guard's decisions
on held entries (:mod:`scrutineer.core.flood`). It says the
original must be withdrawn: a diff of the original and the release shows every removed row,
restricted ones included (LAION withdrew LAION-5B before publishing Re-LAION-5B), and how far that
narrows the restricted rows (their anonymity set, :mod:`scrutineer.release.anonymity`).
"""

from __future__ import annotations

from huggingface_hub import DatasetCard, DatasetCardData

from scrutineer.release.croissant import opt_out_sentence, spdx_url

#: The Hub's licence identifiers that are an SPDX id in lower case (huggingface/hub-docs,
#: ``docs/hub/repositories-licenses.md``, "License identifier (to use in repo card)").
HF_LICENSES = frozenset({
    "apache-2.0", "mit", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "cc0-1.0",
    "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0",
    "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0",
    "cc-by-nc-sa-4.0", "cdla-sharing-1.0", "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0",
    "epl-2.0", "etalab-2.0", "eupl-1.1", "isc", "lppl-1.3c", "ms-pl", "mpl-2.0", "osl-3.0", "postgresql", "ofl-1.1", "ncsa",
    "unlicense", "zlib"
})
#: SPDX ids the Hub spells otherwise (the same page): its families of the GNU licences and the
#: Open Data Commons ones.
HF_SPELLINGS = {"agpl-3.0-only": "agpl-3.0", "agpl-3.0-or-later": "agpl-3.0", "gpl-2.0-only": "gpl-2.0", "gpl-2.0-or-later": "gpl-2.0",
                "gpl-3.0-only": "gpl-3.0", "gpl-3.0-or-later": "gpl-3.0", "lgpl-2.1-only": "lgpl-2.1", "lgpl-2.1-or-later": "lgpl-2.1",
                "lgpl-3.0-only": "lgpl-3.0", "lgpl-3.0-or-later": "lgpl-3.0", "odbl-1.0": "odbl", "odc-by-1.0": "odc-by", "pddl-1.0": "pddl"}


def hf_license(spdx_id: str) -> dict[str, str]:
    """The card's licence metadata for an SPDX id: ``{"license": <the Hub's id>}`` when the Hub
    lists it, else ``{"license": "other", "license_name": <the id in lower case>, "license_link":
    <its SPDX page>}``, as the Hub asks for a licence it does not list."""
    low = spdx_id.lower()
    hub = HF_SPELLINGS.get(low, low)
    if hub in HF_LICENSES or hub in HF_SPELLINGS.values():
        return {"license": hub}
    return {"license": "other", "license_name": low, "license_link": spdx_url(spdx_id)}


def dataset_card(m: dict) -> DatasetCard:
    """The release's dataset card, from its manifest ``m``: Hugging Face metadata (pretty name,
    tags, the data files, the licence the dataset declares) and the provenance, removal policy and
    counts, the opt-out policy, the withdrawal notice, the anonymity set of the restricted rows,
    the detectors, and the hash lists without their entries."""
    license = m.get("license")
    data = DatasetCardData(
        pretty_name=m["release"], tags=["scrutineer", "filtered"], configs=[{"config_name": "default", "data_files": "data/**"}],
        **(hf_license(license) if license else {}),
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
    if opt := m.get("opt_out"):
        text += f"\n## Opt-out policy\n\n{opt_out_sentence(opt)} `manifest.json` (`opt_out`) counts every signal.\n"
    if license:
        text += f"\n## Licence\n\nThe source dataset declares the licence {license} ({spdx_url(license)}).\n"
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
