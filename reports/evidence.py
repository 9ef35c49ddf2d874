"""Evidence read as a sentence: a finding's evidence (the JSON object each detector writes, see
``detectors/*.py``) and a crowd audit entry's detail, as one line of plain text a reviewer reads at
a glance, e.g. "matched hotline-phash v2 entry f8f8…a1b2 at 6 bits (threshold 10)" or "URL
returned HTTP 404 on 3 checks". Pages show it with the raw JSON behind a disclosure; the text is
plain (pages escape it), so the app and a report can share it.

One function per reason family (the part of the reason before its dot), each reading the fields
its detector writes; an unknown family, or evidence of another shape (an older detector version),
gets :func:`_fallback`'s sentence naming the fields, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from scrutineer.core.wording import plural

#: Characters of a hash or another long value kept at each end in a sentence (the whole value
#: stays in the raw JSON).
ENDS = 4


def short(value: object) -> str:
    """A long value (a hash, an entry) as its first and last :data:`ENDS` characters: ``f8f8…a1b2``."""
    text = str(value)
    return text if len(text) <= 2 * ENDS + 1 else f"{text[:ENDS]}…{text[-ENDS:]}"


def _hash_match(reason: str, e: dict[str, Any]) -> str:
    """``hash_match.*`` (url_hashlist, content_hashlist): bank, bank_version, signal, entry,
    distance; ``threshold``, ``more`` (entries within it beyond those listed) and ``transform``
    when written."""
    where = f"{e['bank']} v{e['bank_version']} entry {short(e['entry'])}"
    distance = e["distance"]
    text = f"matched {where} exactly" if not distance else f"matched {where} at {plural(distance, 'bit')}"
    if e.get("threshold") is not None:
        text += f" (threshold {e['threshold']})"
    text += f", by {e['signal']}"
    if e.get("transform"):
        text += f" after {e['transform']}"
    if e.get("more"):
        text += f"; {plural(e['more'], 'more entry', 'more entries')} within the threshold"
    return text


def _link(reason: str, e: dict[str, Any]) -> str:
    """``link.*`` (dead_links): status, http_status, final_url, error, checks."""
    checks = f" on {plural(e['checks'], 'check')}" if e.get("checks") else ""
    if e.get("http_status"):
        text = f"URL returned HTTP {e['http_status']}{checks}"
    elif e.get("error"):
        text = f"URL failed ({e['error']}){checks}"
    else:
        text = f"URL checked as {e['status']}{checks}"
    if reason == "link.moved" and e.get("final_url"):
        text += f", ending at {e['final_url']}"
    return text


def _license(reason: str, e: dict[str, Any]) -> str:
    """``license.*`` (license_gaps): license (the raw value), spdx, condition."""
    if reason == "license.missing":
        return "no licence given"
    if reason == "license.unknown":
        return f"licence {e['license']!r} is not a recognised SPDX licence"
    if reason == "license.disallowed":
        return f"licence {e['spdx']} is not on the allowed list"
    return f"licence {e['spdx']} carries the {e['condition']} condition"


def _optout(reason: str, e: dict[str, Any]) -> str:
    """``optout.*`` (optouts): signal, and the rule, directive, line or value where it was read."""
    said = next((f"{k} {e[k]!r}" for k in ("rule", "directive", "value", "location") if e.get(k) not in (None, "")), "")
    if reason == "optout.invalid":
        return f"{e['signal']} is not conformant ({e.get('fault', 'unreadable')}){': ' + said if said else ''}"
    if reason == "optout.constrained":
        return f"{e.get('signal', 'C2PA')} allows training only under constraints"
    return f"{e['signal']} reserves AI training or mining{': ' + said if said else ''}"


def _duplicate(reason: str, e: dict[str, Any]) -> str:
    """``duplicate.*`` (dedup): kept_sample_id, kept_shard_id, kept_row_index; near ones add
    cluster_size and the nearest link's jaccard or pdq_distance and phash_distance."""
    text = f"duplicate of sample {e['kept_sample_id']} (shard {e['kept_shard_id']}, row {e['kept_row_index']}), which is kept"
    if e.get("cluster_size"):
        text += f"; a cluster of {e['cluster_size']} samples"
    if e.get("jaccard") is not None:
        text += f"; captions {e['jaccard']} similar (Jaccard)"
    if e.get("pdq_distance") is not None:
        text += f"; images {plural(e['pdq_distance'], 'bit')} apart by PDQ"
    elif e.get("phash_distance") is not None:
        text += f"; images {plural(e['phash_distance'], 'bit')} apart by pHash"
    return text


def _content(reason: str, e: dict[str, Any]) -> str:
    """``content.hash_mismatch`` (verify_hash): column, algorithm, expected, actual."""
    return f"the image's {e['algorithm']} is {short(e['actual'])}, but the {e['column']} column says {short(e['expected'])}"


def _crowd(reason: str, e: dict[str, Any]) -> str:
    """``crowd.*`` (sync of confirmed flags): flag_id, report_ids, review_ids, confirmed_at."""
    return (f"crowd flag #{e['flag_id']} confirmed {e['confirmed_at']}, from {plural(len(e['report_ids']), 'report')} "
            f"and {plural(len(e['review_ids']), 'review')}")


#: Reason family -> its sentence.
FAMILIES: dict[str, Callable[[str, dict[str, Any]], str]] = {
    "hash_match": _hash_match,
    "link": _link,
    "license": _license,
    "optout": _optout,
    "duplicate": _duplicate,
    "content": _content,
    "crowd": _crowd,
}


def _fallback(evidence: object) -> str:
    if isinstance(evidence, dict) and evidence:
        return "recorded " + ", ".join(f"{k} {short(json.dumps(v, ensure_ascii=False)) if isinstance(v, (dict, list)) else v}" for k, v in sorted(evidence.items()))
    return "no evidence recorded" if evidence in (None, {}, "") else f"recorded {short(evidence)}"


def evidence_sentence(reason: str, evidence: object) -> str:
    """One finding's evidence as a sentence.

    Args:
        reason: the finding's reason code (``hash_match.pdq``, ``link.dead``, …).
        evidence: its evidence: the parsed JSON object (a JSON text is parsed first).

    Returns:
        Plain text (unescaped): its family's sentence (:data:`FAMILIES`), or one naming the fields
        for an unknown family or shape.
    """
    if isinstance(evidence, str):
        try:
            evidence = json.loads(evidence)
        except ValueError:
            return _fallback(evidence)
    family = FAMILIES.get(reason.partition(".")[0])
    if family is None or not isinstance(evidence, dict):
        return _fallback(evidence)
    try:
        return family(reason, evidence)
    except (KeyError, TypeError):  # a shape of another detector version
        return _fallback(evidence)


#: How an audit detail's keys read, in this order; others follow as "key value".
_AUDIT_WORDS: dict[str, Callable[[Any], str]] = {
    "decision": lambda v: f"decision {v}",
    "reason": lambda v: f"reason {v}",
    "duplicate_of": lambda v: f"duplicate of #{v}",
    "category": lambda v: f"category {v}",
    "source": lambda v: f"from the {v}" if v in ("api", "form") else f"by {v}",
    "contributors": lambda v: f"{plural(v, 'contributor')} reported it",
}


def audit_sentence(detail: str | dict | None) -> str:
    """A crowd audit entry's detail (a JSON object) as text: ``{"decision": "reject", "reason":
    "duplicate_flag", "duplicate_of": 12}`` reads "decision reject, reason duplicate_flag, duplicate
    of #12"; keys it does not know read "key value"."""
    if isinstance(detail, str):
        try:
            detail = json.loads(detail)
        except ValueError:
            return detail
    if not isinstance(detail, dict):
        return "" if detail is None else str(detail)
    known = [_AUDIT_WORDS[k](detail[k]) for k in _AUDIT_WORDS if k in detail]
    return ", ".join(known + [f"{k} {v}" for k, v in sorted(detail.items()) if k not in _AUDIT_WORDS])
