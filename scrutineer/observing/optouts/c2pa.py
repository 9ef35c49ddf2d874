"""C2PA and CAWG training-and-mining assertions, read from an image's bytes in memory.

The C2PA manifest store is read with ``c2pa-python`` (the Content Authenticity Initiative's
binding of c2pa-rs) from a ``BytesIO``: no temporary file, so hash-and-drop holds. The assertions
``c2pa.training-mining`` (C2PA 1.x) and ``cawg.training-mining`` (CAWG Training and Data Mining
assertion 1.1, DIF-ratified 2025-05-16; 1.0, 2024-03-18) hold entries such as ``c2pa.ai_training``,
``cawg.ai_generative_training`` or ``cawg.data_mining``, each with ``use``: ``allowed``,
``notAllowed`` or ``constrained`` (with ``constraint_info``; 1.1's prose spells it
``constraints_info``, and both are read). 1.1 puts them in an ``entries`` map; CAWG 1.0 and
C2PA 1.x put them in the assertion's data itself: both are read. Every such assertion of the active
manifest is read (a manifest may carry both labels); an entry given twice keeps its most
restrictive use. CAWG 1.1: "In the absence of additional information, ``constrained`` shall be
treated as equivalent to ``notAllowed``": so a constrained entry with no constraint text is a
reservation, and one with its text is for a reviewer (``optout.constrained``). The signature's
trust is not judged here: an untrusted test certificate still states the creator's wishes, and
the validation state goes in the evidence.

:func:`read_training_mining` runs in the content workers (:func:`scrutineer.observing.hashing.hash_content`); the
detector judges its JSON (:func:`judge`).
"""

from __future__ import annotations

import io
import json

from scrutineer.observing.optouts import Signal

LABELS = ("c2pa.training-mining", "cawg.training-mining")
#: Entries about building datasets and training models (``ai_inference``, using a model on the
#: image, is not): ``<c2pa|cawg>.<name>``.
TRAINING_ENTRIES = ("ai_training", "ai_generative_training", "data_mining")
#: Each use by how much it restricts: an entry given twice keeps the higher.
_RESTRICTIVE = {"allowed": 0, "constrained": 1, "notAllowed": 2}
#: The status of a manifest read without the c2pa extra installed (:func:`read_training_mining`).
NOT_INSTALLED = "c2pa extra not installed"
#: The formats c2pa-rs reads images of, by their magic bytes.
_MAGIC = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG": "image/png", b"RIFF": "image/webp", b"GIF8": "image/gif"}


def read_training_mining(body: bytes) -> str | None:
    """The training-mining entries of the active manifest of ``body``, as JSON text
    ``{"entries": {name: use}, "constraints": {name: info}, "label", "validation_state"}``; None when
    the bytes carry no manifest or no such assertion. Never raises: a manifest that cannot be read
    is ``{"error": "<kind>"}``, and one read without the c2pa extra installed ``{"error": "c2pa extra
    not installed"}``, which gives no finding (README "Installing").

    A body without the bytes ``c2pa`` (the JUMBF label every manifest store has) is not handed to
    the library: a byte search, so images without C2PA cost nothing measurable.

    Bounds: the body is at most ``fetch.max_bytes``, and c2pa-rs reads it in time linear in its
    size: ~9 ms per MB on 10 MB of random bytes behind JPEG magic and the label, 1-10 ms on cut or
    garbled real manifests, resident memory unchanged (measured for issue 23;
    ``tests/test_policy_readers_fuzz.py`` holds it to 50 ms per MiB). Nothing is cut before
    handing it over: a manifest may sit anywhere in the file. An assertion whose ``data`` or
    ``entries`` is not an object is read as having no entries.
    """
    if b"c2pa" not in body:
        return None
    kind = next((k for magic, k in _MAGIC.items() if body.startswith(magic)), None)
    if kind is None:
        return None
    try:
        import c2pa  # optional: the c2pa extra (a lazy import keeps c2pa-rs out of processes that never read a manifest)
    except ImportError:
        return json.dumps({"error": NOT_INSTALLED})
    try:
        with c2pa.Reader(kind, io.BytesIO(body)) as reader:
            store = json.loads(reader.json())
    except Exception as e:  # noqa: BLE001 - c2pa raises its own error types for every kind of bad data
        return json.dumps({"error": type(e).__name__})
    return training_mining(store)


def training_mining(store: dict) -> str | None:
    """The JSON text :func:`read_training_mining` returns, from a manifest store as c2pa-rs gives
    it (``{"active_manifest", "manifests": {label: {"assertions": [{"label", "data"}]}},
    "validation_state"}``); None when its active manifest has no training-mining assertion."""
    manifest = store.get("manifests", {}).get(store.get("active_manifest") or "", {})
    labels, uses, constraints = [], {}, {}
    for assertion in manifest.get("assertions", []):
        label = assertion.get("label", "").split("__", 1)[0]  # c2pa numbers repeated labels: x__1
        if label not in LABELS:
            continue
        labels.append(label)
        data = assertion.get("data")
        data = data if isinstance(data, dict) else {}
        entries = data["entries"] if isinstance(data.get("entries"), dict) else data  # 1.1's map, or 1.0's entries in the data
        for name, entry in entries.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("use"), str):
                continue
            use = entry["use"]
            if _RESTRICTIVE.get(use, -1) > _RESTRICTIVE.get(uses.get(name), -1):
                uses[name] = use
            text = entry.get("constraint_info", entry.get("constraints_info"))
            if isinstance(text, str) and text:
                constraints[name] = text
    if not labels:
        return None
    return json.dumps({"label": labels[0], "labels": sorted(set(labels)), "entries": uses, "constraints": constraints,
                       "validation_state": store.get("validation_state")}, sort_keys=True)


def judge(observed: str | None) -> Signal | None:
    """``optout.c2pa`` when a :data:`TRAINING_ENTRIES` entry is ``notAllowed``, or ``constrained``
    with no constraint text (CAWG 1.1: then "equivalent to ``notAllowed``"); else
    ``optout.constrained`` when one is ``constrained`` with its text, for a reviewer; else None (no
    assertion, all allowed, or an unreadable manifest).

    Evidence: ``{"signal": <label>, "not_allowed": [entry names], "constrained_as_not_allowed":
    [entries constrained with no text], "validation_state"}``, or for ``optout.constrained``
    ``{"signal", "constrained": [entry names], "constraints": {entry: text}, "validation_state"}``.
    """
    if not observed:
        return None
    data = json.loads(observed)
    entries = {k: use for k, use in data.get("entries", {}).items() if k.rpartition(".")[2] in TRAINING_ENTRIES}
    constraints = data.get("constraints", {})
    base = {"signal": data.get("label"), "validation_state": data.get("validation_state")}
    refused = sorted(k for k, use in entries.items() if use == "notAllowed")
    bare = sorted(k for k, use in entries.items() if use == "constrained" and k not in constraints)
    if refused or bare:
        return Signal("optout.c2pa", {**base, "not_allowed": refused, "constrained_as_not_allowed": bare})
    if constrained := sorted(k for k, use in entries.items() if use == "constrained"):
        return Signal("optout.constrained", {**base, "constrained": constrained, "constraints": {k: constraints[k] for k in constrained}})
    return None
