"""A release's ``croissant.json``: Croissant 1.1 metadata with its Responsible AI fields, made from
the release's manifest and its output files.

Croissant 1.1 (MLCommons, published 2026-01-29, ``http://mlcommons.org/croissant/1.1``:
``docs/croissant-spec-1.1.md`` of mlcommons/croissant) and Croissant RAI 1.0
(``http://mlcommons.org/croissant/RAI/1.0``, ``docs/croissant-rai-spec.md``; the 1.1 spec links no
later RAI version). What it holds:

- ``distribution``: every file under ``data/`` as a ``cr:FileObject`` whose ``contentUrl`` is its
  path relative to the release directory, with its ``sha256`` (from the manifest) and an
  ``encodingFormat`` mlcroissant 1.1.1 reads (:data:`ENCODINGS`: parquet only as
  ``application/x-parquet``, not IANA's ``application/vnd.apache.parquet``). Several files of one
  schema are read through one ``cr:FileSet`` that ``includes`` their exact paths (no
  ``containedIn``: mlcroissant reads it from the JSON file's folder), so a record set names one
  source however many shards there are; mlcroissant checks the sha256 of a file a record set reads
  as a ``FileObject``, never of a ``FileSet``'s members, so every file is listed as a ``FileObject``
  too.
- ``recordSet``: the release's rows, one record set per schema (usually one, ``rows``), a field per
  column typed from the output file's Arrow schema (:func:`data_type`; the URL column is
  ``sc:URL``; CSV and TSV columns are ``sc:Text``, as every value is text there). A COCO release's
  rows are its annotations (``id``, ``image_id``, ``caption``, by JSONPath); its ``images`` and
  ``licenses`` stay in the file, not in a record set. Struct and map columns have no field:
  mlcroissant 1.1.1 casts no nested object (:data:`NESTED_NOTE`). A CSV or TSV file that
  mlcroissant's reader (pandas' ``read_csv`` with its defaults) would read otherwise than the
  shard's dialect (no header line, or unquoted with a field that starts with ``"``) is in the
  distribution but in no record set: the description says so.
- ``license``: ``https://spdx.org/licenses/<id>.html`` when the config declares ``dataset.license``
  (the manifest's ``license``); absent otherwise (mlcroissant then warns that it is missing, which is true).
- PROV-O (spec 1.1 "Provenance"): ``prov:wasDerivedFrom`` lists each input shard by its sha256
  (``urn:sha256:<hex>``, with its ``shard_id`` as name), ``prov:wasGeneratedBy`` the scan and
  release as a ``prov:Activity`` associated with the tool, a ``prov:SoftwareAgent`` with its
  version.
- RAI 1.0: ``rai:dataCollection`` (the source dataset and how the scan observed it: which
  detectors, and whether they fetched the URLs), ``rai:dataPreprocessingProtocol`` (the variant's
  policy, each entry with its row count, and the opt-out policy), ``rai:dataLimitations``,
  ``rai:personalSensitiveInformation`` (counts only: rows removed, restricted, per policy entry;
  never a URL, a sample or a restricted detail) and ``rai:dataReleaseMaintenancePlan``.

Not held: ODRL usage conditions. Croissant 1.1 ("Data Use Conditions") puts an ``odrl:Offer`` in
``sc:usageInfo`` to state what the *dataset* may be used for (``odrl:permission`` with an action and
constraints). An opt-out is a rightsholder's reservation about one *sample*. The release removes
the samples whose reservations its policy honours, so none of them applies to a row it holds, and
an offer prohibiting, say, training on the whole release for the rows it keeps (a variant that
keeps ``optout.constrained``) would claim more than any rightsholder said. ODRL's core vocabulary
has no AI-training action either (TDMRep's ODRL profile has ``tdm:mine``, for text and data mining).
The opt-out policy is stated in ``rai:dataPreprocessingProtocol`` and in the manifest's ``opt_out``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from glob import escape
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from scrutineer.core.config import DatasetConfig
from scrutineer.core.errors import ShardError
from scrutineer.core.layout import Layout
from scrutineer.core.registry import get_detector_class
from scrutineer.core.wording import plural
from scrutineer.formats.registry import FORMATS
from scrutineer.formats.sources import Shard, column_mapping

#: Where Croissant 1.1 is defined; ``conformsTo`` names it (spec 1.1, "Versioning").
CONFORMS_TO = "http://mlcommons.org/croissant/1.1"

#: Croissant 1.1's JSON-LD context (spec Appendix 1), with ``https://schema.org/`` as mlcroissant
#: 1.1.1 and the repo's ``datasets/1.1`` examples write it (the appendix's ``http://`` fails
#: mlcroissant's check that a Dataset extends https://schema.org/Dataset), mlcroissant's own keys
#: (``path``, ``repeated``, ``replace``, ``samplingRate``, without which it warns of a non-standard
#: context), and the RAI and PROV-O namespaces.
CONTEXT = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/",
    "prov": "http://www.w3.org/ns/prov#",
    "annotation": "cr:annotation",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "excludes": "cr:excludes",
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "readLines": "cr:readLines",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sdVersion": "cr:sdVersion",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
    "unArchive": "cr:unArchive",
    "value": "cr:value",
}

#: What a release writes for each ``dataset.format`` (:mod:`scrutineer.release.build`), as the
#: ``encodingFormat`` mlcroissant 1.1.1 reads it (``mlcroissant._src.core.constants.EncodingFormat``).
ENCODINGS = {
    "parquet": "application/x-parquet",
    "hf": "application/x-parquet",
    "webdataset": "application/x-parquet",
    "jsonl": "application/jsonlines",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "coco": "application/json",
}
#: A COCO release's rows: its annotations' fields, by JSONPath (:class:`scrutineer.formats.coco.Coco`).
COCO_FIELDS = {"id": "sc:Integer", "image_id": "sc:Integer", "caption": "sc:Text"}
NESTED_NOTE = "Struct and map columns ({names}) have no field: mlcroissant 1.1.1 reads no nested object as one value."


def data_type(t: pa.DataType) -> str | None:
    """The Croissant ``dataType`` of an Arrow type (a list is its items' type, with ``isArray``),
    or None for a struct or map."""
    if _is_list(t):
        return data_type(t.value_type)
    if pa.types.is_boolean(t):
        return "sc:Boolean"
    if pa.types.is_integer(t):
        return "sc:Integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "sc:Float"
    if pa.types.is_timestamp(t):
        return "sc:DateTime"
    if pa.types.is_date(t):
        return "sc:Date"
    if pa.types.is_struct(t) or pa.types.is_map(t):
        return None
    return "sc:Text"  # strings, binary, and anything else mlcroissant casts to bytes


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


@dataclass
class _Group:
    """Output files of one encoding and one schema: one record set."""

    encoding: str
    columns: tuple[tuple[str, str, bool], ...]  # (name, dataType, isArray)
    paths: list[str] = field(default_factory=list)
    nested: tuple[str, ...] = ()


def croissant(manifest: dict, release: Path, ds: DatasetConfig) -> dict:
    """The release's Croissant 1.1 document, from its manifest and the files under ``release``.

    Args:
        manifest: the release's ``manifest.json`` as :func:`scrutineer.release.build.build_release`
            writes it.
        release: the release directory (its ``data/`` written).
        ds: the dataset's config: its CSV dialect and column mapping.

    Raises:
        ShardError: an output file cannot be read.
    """
    name = manifest["release"]
    distribution, groups, unread = [], {}, []
    for entry in manifest["shards"]:
        out, fmt = entry["output"], entry["format"]
        encoding = ENCODINGS[fmt]
        distribution.append({"@type": "cr:FileObject", "@id": out["path"], "name": out["path"], "contentUrl": out["path"],
                             "encodingFormat": encoding, "contentSize": f"{(release / out['path']).stat().st_size} B", "sha256": out["sha256"]})
        schema = _schema(release / out["path"], fmt, ds, entry["shard_id"], out["rows"])
        if schema is None:
            if out["rows"]:
                unread.append(out["path"])
            continue
        columns, nested = schema
        groups.setdefault((encoding, columns), _Group(encoding, columns, nested=nested)).paths.append(out["path"])
    record_sets = []
    for n, group in enumerate(groups.values()):
        rs = "rows" if len(groups) == 1 else f"rows-{n + 1}"
        if len(group.paths) == 1:
            source = {"fileObject": {"@id": group.paths[0]}}
        else:
            files = f"{rs}-files"
            distribution.append({"@type": "cr:FileSet", "@id": files, "name": files, "encodingFormat": group.encoding,
                                 "includes": [escape(p) for p in group.paths]})
            source = {"fileSet": {"@id": files}}
        fields = []
        for column, dtype, is_array in group.columns:
            extract = {"jsonPath": f"$.annotations[*].{column}"} if group.encoding == ENCODINGS["coco"] else {"column": column}
            fields.append({"@type": "cr:Field", "@id": f"{rs}/{column}", "name": column, "dataType": dtype,
                           **({"isArray": True, "arrayShape": "-1"} if is_array else {}), "source": {**source, "extract": extract}})
        description = f"The release's rows in {', '.join(group.paths)}."
        if group.nested:
            description += " " + NESTED_NOTE.format(names=", ".join(group.nested))
        record_sets.append({"@type": "cr:RecordSet", "@id": rs, "name": rs, "description": description, "field": fields})

    doc = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CONFORMS_TO,
        "name": name,
        "description": _description(manifest, unread),
        "citeAs": f"@misc{{{re.sub(r'[^A-Za-z0-9_-]', '_', name)}, title={{{name}: a filtered re-release of {manifest['dataset']}}}, "
        f"note={{Scrutineer {manifest['tool']['version']}, scan {manifest['run_ids'][0]}, variant {manifest['variant']}}}, "
        f"year={{{manifest['created_at'][:4]}}}}}",
        "datePublished": manifest["created_at"],
        "keywords": ["scrutineer", "filtered"],
        **({"license": spdx_url(manifest["license"])} if manifest.get("license") else {}),
        "prov:wasDerivedFrom": [
            {"@id": f"urn:sha256:{e['input']['sha256']}", "@type": "prov:Entity", "name": e["shard_id"], "sha256": e["input"]["sha256"]}
            for e in manifest["shards"]
        ],
        "prov:wasGeneratedBy": {
            "@type": "prov:Activity",
            "name": f"scan {manifest['run_ids'][0]} of {manifest['dataset']}, then release variant {manifest['variant']}",
            "prov:endedAtTime": manifest["created_at"],
            "prov:wasAssociatedWith": {"@type": ["prov:SoftwareAgent", "sc:SoftwareApplication"], "name": manifest["tool"]["name"],
                                       "softwareVersion": manifest["tool"]["version"]},
        },
        "rai:dataCollection": _collection(manifest),
        "rai:dataPreprocessingProtocol": _preprocessing(manifest),
        "rai:dataLimitations": _limitations(manifest),
        "rai:personalSensitiveInformation": _sensitive(manifest),
        "rai:dataReleaseMaintenancePlan": (
            f"Built by {manifest['tool']['name']} {manifest['tool']['version']} on {manifest['created_at']}. A release is rebuilt "
            "from a new scan of the original (a new hash list, a recheck of the links, new crowd decisions); each build "
            "replaces the release directory, and manifest.json gives the sha256 of every input and output file. The original "
            "dataset must be withdrawn when this release is published: a diff of the two shows every removed row."
        ),
        "distribution": distribution,
        "recordSet": record_sets,
    }
    return doc


def write_croissant(manifest: dict, release: Path, ds: DatasetConfig) -> Path:
    """Write :func:`croissant` as ``release/croissant.json``.

    Returns:
        Its path.
    """
    path = release / Layout.CROISSANT
    path.write_text(json.dumps(croissant(manifest, release, ds), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def spdx_url(spdx_id: str) -> str:
    """The SPDX License List page of an id, the form Croissant recommends for ``license``."""
    return f"https://spdx.org/licenses/{spdx_id}.html"


def _schema(path: Path, fmt: str, ds: DatasetConfig, shard_id: str, rows: int) -> tuple[tuple, tuple[str, ...]] | None:
    """((name, dataType, isArray) per column, the struct/map columns left out) of one output file,
    or None when mlcroissant would not read its rows as the shard's format does (or it has none
    and no schema of its own)."""
    if fmt == "coco":
        return tuple((c, t, False) for c, t in COCO_FIELDS.items()), ()
    if ENCODINGS[fmt] == ENCODINGS["parquet"]:
        schema = pq.read_schema(path)
    else:
        if not rows or fmt in ("csv", "tsv") and not _pandas_reads(path, fmt, ds):
            return None
        batch = next(iter(FORMATS[fmt].rows(str(path), ds)), None)
        if batch is None:
            return None
        schema = batch.schema
    try:
        url = column_mapping(Shard(shard_id, str(path), fmt), ds, schema.names)["url"]
    except ShardError:
        url = None
    columns, nested = [], []
    for f in schema:
        dtype = data_type(f.type) if fmt not in ("csv", "tsv") else "sc:Text"
        if dtype is None:
            nested.append(f.name)
            continue
        columns.append((f.name, "sc:URL" if f.name == url and dtype == "sc:Text" else dtype, _is_list(f.type)))
    return tuple(columns), tuple(nested)


def _pandas_reads(path: Path, fmt: str, ds: DatasetConfig) -> bool:
    """Whether pandas' ``read_csv`` with its defaults (what mlcroissant 1.1.1 calls) reads the file's
    rows as its dialect does: a header line, and quotes either delimiting fields (the dialect's
    quoting) or never opening one (no field starts with ``"``)."""
    if ds.names is not None or ds.header is False:
        return False
    quoting = ds.quoting if ds.quoting is not None else fmt == "csv"
    if quoting:
        return True
    delimiter = b"," if fmt == "csv" else b"\t"
    with open(path, "rb") as f:
        return not any(line.startswith(b'"') or delimiter + b'"' in line for line in f)


def _description(m: dict, unread: list[str]) -> str:
    text = (f"A filtered re-release of {m['dataset']}: its shards with the rows that variant {m['variant']}'s policy removes gone "
            f"({m['rows']['input']} rows in, {m['rows']['output']} out), made by {m['tool']['name']} {m['tool']['version']} "
            f"from scan {m['run_ids'][0]}. manifest.json holds the policy, the counts and the sha256 of every file.")
    if unread:
        text += (f" The files {', '.join(unread)} are in no record set: mlcroissant reads CSV and TSV with pandas' defaults, "
                 "which would not read their dialect (no header line, or unquoted fields that start with a quote).")
    return text


def _collection(m: dict) -> str:
    detectors = ", ".join(f"{n} {d['version']}" for n, d in m["detectors"].items())
    fetched = [n for n, d in m["detectors"].items() if _needs(n, d.get("params", {})) == "content"]
    how = (f"for {', '.join(fetched)}, the scan's content stage read each sample's image (fetched from its URL, or from a "
           "webdataset's tar) and hashed it in memory, storing no image bytes" if fetched else "only the rows' metadata was read; no URL was fetched")
    return (f"The rows of the source dataset {m['dataset']} ({plural(len(m['shards']), 'shard')}, each named in prov:wasDerivedFrom by "
            f"its sha256), as scan {m['run_ids'][0]} read them. Detectors: {detectors}; {how}. This release collected no new data.")


def _needs(name: str, params: dict) -> str:
    """``metadata`` or ``content``: what the detector read with these parameters (its class's
    ``needs_for``, :mod:`scrutineer.detectors.base`)."""
    cls = get_detector_class(name)
    return cls.needs_for(cls.Params(**params))


def _preprocessing(m: dict) -> list[str]:
    removed = m["removed"]
    steps = [f"Rows with a finding whose reason matches {p!r} were removed ({plural(n, 'row')})." for p, n in removed["by_policy_entry"].items()]
    steps.append(f"{removed['rows']} rows were removed in all, a row removed for several reasons counted once; {m['rows']['output']} "
                 "remain, in the input's order, with the input's columns.")
    if opt := m.get("opt_out"):
        steps.append(opt_out_sentence(opt))
    return steps


def opt_out_sentence(opt: dict) -> str:
    """The manifest's ``opt_out`` in one paragraph (the card and ``croissant.json`` both say it)."""
    honoured = [r for r, s in opt["signals"].items() if s["honoured"]]
    signals = ", ".join(f"{r} ({plural(opt['signals'][r]['removed'], 'row')})" for r in honoured) or "none"
    return (f"Opt-out policy: the release honours the opt-out signals {signals}; {plural(opt['rows_removed'], 'row')} removed for an "
            f"opt-out in all. Agents: {opt['agents']['description']} ({opt['agents']['count']}). X-Robots-Tag directives: "
            f"{', '.join(opt['header_directives'])}. Specifications: {'; '.join(opt['specs'].values())}. Conditional permissions "
            f"(optout.constrained) were {opt['constrained']}; malformed signals (optout.invalid) were {opt['invalid']}.")




def _limitations(m: dict) -> list[str]:
    listed = m["removed"]["listed"]
    return [
        ("A row is removed only when a detector of the scan found something; a row without a finding is not known to be free of "
         "what the detectors look for, only not found by them."),
        ("Link checks, hash matches and opt-out signals are as of the scan's checks: a link dead then may be live now, a list "
         "updated since may match more rows, and a site may have changed its policy files."),
        f"Removals for reasons an outsider cannot recompute are counted, never listed ({listed} removals listed, in removed.parquet when present).",
    ]


def _sensitive(m: dict) -> list[str]:
    removed, hidden = m["removed"], m["removed"]["anonymity_set"]
    return [
        (f"Of the {removed['rows']} removed rows, {removed['restricted']} had a restricted finding (a hash-list match); they are counted, "
         "and no URL, sample id or list entry of theirs is in this release."),
        (f"The anonymity set of the restricted rows: {hidden['rows']} removed rows no recomputable reason explains, "
         f"{hidden['restricted']} of them restricted."),
        "Removed per policy entry: " + "; ".join(f"{p}: {n}" for p, n in removed["by_policy_entry"].items()) + ".",
    ]
