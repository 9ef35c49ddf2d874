"""IPTC Photo Metadata's "Data Mining" property (``plus:DataMining``), read from an image's XMP in
memory.

IPTC Photo Metadata Standard 2023.1 (approved 2023-10-04; in every edition since, 2024.1 and
2025.1) adopted the PLUS Coalition's ``plus:DataMining`` (namespace
``http://ns.useplus.org/ldf/xmp/1.0/``): one URI of the PLUS vocabulary
``http://ns.useplus.org/ldf/vocab/`` (:data:`VOCABULARY`, labels as IPTC and ExifTool give them),
with ``plus:OtherConstraints`` (a language alternative of free text) as its human-readable
companion. IPTC's user note: "the absence of a prohibition does not indicate that the asset owner
grants permission", and "Prohibited except for search engine indexing ... prohibits all other
uses, such as AI/ML training". So every ``DMI-PROHIBITED*`` value reserves the image from a dataset
built to train models (``GENAIMLTRAINING`` from generative training, which such datasets serve;
the three ``SEE…`` values prohibit and point to the details), and ``DMI-UNSPECIFIED`` and
``DMI-ALLOWED`` reserve nothing.

:func:`read_data_mining` runs in the content workers beside the C2PA read
(:func:`scrutineer.observing.hashing.hash_content`); the detector judges its JSON (:func:`judge`).
The XMP packet is parsed by Pillow's ``Image.getxmp``, which uses defusedxml (no entity
expansion, no external entities). An XMP toolkit (python-xmp-toolkit over Adobe's XMP SDK in
exempi) reads the same property, but needs a system library pip cannot install, and Pillow already
opens every image here: measured on IPTC's 2023.2 reference image (a 30 KB packet), ``getxmp``
takes 2.6 ms, and it runs only on the images whose bytes name the property.

Bounds: a body without the bytes ``DataMining`` and the PLUS namespace is not parsed (two byte
searches, ~15 µs per 150 KB: most images cost nothing more). Only JPEG, PNG, WebP and GIF
packets are read (Pillow's ``info``), and a packet over :data:`MAX_XMP` bytes is not parsed
(JPEG's XMP segment holds at most 65,502; defusedxml parses ~10 MB/s, so the cap is ~25 ms).
Extended XMP (a JPEG packet split over several segments) is not read: Pillow reads the main
packet, where ``plus:DataMining`` is written. Every fault is a value (``{"error"}``), never an
exception.
"""

from __future__ import annotations

import io
import json
import warnings

from PIL import Image

from scrutineer.observing.optouts import Signal

#: The PLUS XMP namespace, which the packet must declare.
NAMESPACE = b"http://ns.useplus.org/ldf/xmp/1.0/"
#: The PLUS Data Mining vocabulary's namespace.
VOCABULARY_URI = "http://ns.useplus.org/ldf/vocab/"
#: Each value of the vocabulary -> its label (IPTC Photo Metadata Standard 2023.1; ExifTool's PLUS.pm).
VOCABULARY = {
    "DMI-UNSPECIFIED": "Unspecified - no prohibition defined",
    "DMI-ALLOWED": "Allowed",
    "DMI-PROHIBITED-AIMLTRAINING": "Prohibited for AI/ML training",
    "DMI-PROHIBITED-GENAIMLTRAINING": "Prohibited for Generative AI/ML training",
    "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING": "Prohibited except for search engine indexing",
    "DMI-PROHIBITED": "Prohibited",
    "DMI-PROHIBITED-SEECONSTRAINT": "Prohibited, see plus:OtherConstraints",
    "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR": "Prohibited, see iptcExt:EmbdEncRightsExpr",
    "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR": "Prohibited, see iptcExt:LinkedEncRightsExpr",
}
#: The values that reserve nothing (the others all start ``DMI-PROHIBITED``).
NOT_RESERVING = ("DMI-UNSPECIFIED", "DMI-ALLOWED")
#: The largest XMP packet parsed, in bytes.
MAX_XMP = 256 * 1024
#: The most characters of the value and of plus:OtherConstraints kept (a packet may hold 256 KiB of text).
MAX_TEXT = 1000
#: What the evidence names as the rule's source.
SPEC = "IPTC Photo Metadata Standard 2023.1+, Data Mining (plus:DataMining)"
#: The formats whose packet Pillow keeps in ``info``, by their magic bytes.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"RIFF", b"GIF8")


def read_data_mining(body: bytes) -> str | None:
    """The ``plus:DataMining`` value of ``body``'s XMP and its ``plus:OtherConstraints``, as JSON
    text ``{"data_mining": <URI as written>, "other_constraints": <text> | null}`` (each cut to
    :data:`MAX_TEXT` characters); None when the image declares none. Never raises: a packet that
    cannot be read is ``{"error": "<why>"}``."""
    if b"DataMining" not in body or NAMESPACE not in body or not body.startswith(_MAGIC):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # only the metadata is read: a bomb's size or a cut EXIF block does not matter here
            with Image.open(io.BytesIO(body)) as image:
                packet = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp") or b""
                if len(packet) > MAX_XMP:
                    return json.dumps({"error": f"XMP packet of {len(packet):,} bytes, over {MAX_XMP:,}"})
                if NAMESPACE not in (packet.encode() if isinstance(packet, str) else packet):
                    return None
                xmp = image.getxmp()
    except Exception as e:  # noqa: BLE001 - Pillow and defusedxml raise many types for bad data
        return json.dumps({"error": type(e).__name__})
    for description in _descriptions(xmp):
        value = _simple(description.get("DataMining"))
        if value and value.strip():
            other = _text(description.get("OtherConstraints"))
            return json.dumps({"data_mining": value.strip()[:MAX_TEXT], "other_constraints": other[:MAX_TEXT] if other else None}, sort_keys=True)
    return None


def judge(observed: str | None) -> Signal | None:
    """``optout.iptc`` when the value prohibits (every ``DMI-PROHIBITED*``), ``optout.invalid`` when
    it is not a value of the vocabulary (or the packet could not be read), else None.

    Evidence: ``{"signal": "IPTC plus:DataMining", "value", "label", "other_constraints", "spec"}``
    (``{"signal", "value" | "fault"}`` when invalid).
    """
    if not observed:
        return None
    data = json.loads(observed)
    signal = "IPTC plus:DataMining"
    if "error" in data:
        return Signal("optout.invalid", {"signal": signal, "fault": data["error"]})
    value = data["data_mining"]
    code = value.removeprefix(VOCABULARY_URI) if value.startswith(VOCABULARY_URI) else None
    if code not in VOCABULARY:
        return Signal("optout.invalid", {"signal": signal, "value": value, "fault": f"not a value of {VOCABULARY_URI}"})
    if code in NOT_RESERVING:
        return None
    return Signal("optout.iptc", {"signal": signal, "value": value, "label": VOCABULARY[code], "other_constraints": data.get("other_constraints"), "spec": SPEC})


def _descriptions(xmp: dict) -> list[dict]:
    """The ``rdf:Description`` elements of ``Image.getxmp``'s dict (namespaces dropped)."""
    rdf = xmp.get("xmpmeta", {}).get("RDF", {}) if isinstance(xmp.get("xmpmeta"), dict) else {}
    found = rdf.get("Description", []) if isinstance(rdf, dict) else []
    return [d for d in (found if isinstance(found, list) else [found]) if isinstance(d, dict)]


def _simple(value: object, depth: int = 3) -> str | None:
    """The value of a simple XMP property as ``Image.getxmp`` gives it, in each RDF/XML form XMP
    writes one (XMP Specification Part 1, ISO 16684-1, "Serializing XMP"): an attribute or an
    element's text (a ``text`` key beside attributes such as ``xml:lang``), a URI as
    ``rdf:resource``, or a qualified value's ``rdf:value`` (in an ``rdf:parseType="Resource"``
    element or a nested ``rdf:Description``, at most ``depth`` deep); None for none of these."""
    if isinstance(value, str) or depth == 0 or not isinstance(value, dict):
        return value if isinstance(value, str) else None
    for key in ("text", "resource", "value", "Description"):
        if (found := _simple(value.get(key), depth - 1)) is not None:
            return found
    return None


def _text(value: object) -> str | None:
    """The x-default (else the first) text of a language alternative (``rdf:Alt`` of ``rdf:li``)."""
    alt = value.get("Alt") if isinstance(value, dict) else None
    items = alt.get("li") if isinstance(alt, dict) else None
    items = items if isinstance(items, list) else [items]
    texts = [(i.get("lang"), i.get("text")) if isinstance(i, dict) else (None, i) for i in items]
    texts = [(lang, t) for lang, t in texts if isinstance(t, str)]
    return next((t for lang, t in texts if lang == "x-default"), texts[0][1] if texts else None)
