"""``optouts``: machine-readable reservations of AI training and text-and-data mining, with evidence.

Policy files are those of the sample's URL as the dataset gives it (what a crawler reads before
fetching it); headers, C2PA and IPTC metadata are those of the last response (after redirects). Every finding's
evidence names its signal and the matched rule, line or value; a policy file's finding adds the
file's URL, its sha256 and when it was read (``read_at``); a response's, when it was checked.
Each module of :mod:`scrutineer.observing.optouts` documents its rules and their sources.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from scrutineer.core.config import Config
from scrutineer.core.extras import require
from scrutineer.detectors.base import Detector, Reason, empty_findings, evidence_json
from scrutineer.observing.optouts import Signal, ai_txt, c2pa, headers, iptc, robots, rsl, tdmrep
from scrutineer.observing.policy_files import LICENCE_PREFIX, POLICY_PATHS, RSL, PolicyFile, origin

#: The reasons that reserve a sample (``optout.constrained`` and ``optout.invalid`` do not), then all.
RESERVATIONS = tuple(f"optout.{s}" for s in ("header", "tdmrep", "aipref", "content_signal", "ai_txt", "robots", "rsl", "c2pa", "iptc"))
REASONS = (*RESERVATIONS, "optout.constrained", "optout.invalid")


class OptoutsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agents: list[str] | None = Field(
        None, description="AI crawler product tokens whose robots.txt, ai.txt and X-Robots-Tag rules count; default: the ai-robots-txt "
        "project's robots.json (package data), img2dataset and Scrutineer."
    )
    header_directives: list[str] = Field(
        list(headers.DIRECTIVES), description="X-Robots-Tag directives that reserve a sample: noai and noimageai (DeviantArt) and noml "
        "(Mojeek's NoML). img2dataset's default also refuses noindex and noimageindex, which are about search indexing."
    )


class Optouts(Detector):
    """Flags samples whose rightsholder reserved AI training or TDM in machine-readable form. Needs
    the content stage, which reads each origin's robots.txt, ai.txt and tdmrep.json once per
    ``fetch.policy_ttl``.

    Reasons (none restricted: opt-out evidence is public):
    
    - ``optout.header``: the image response's ``X-Robots-Tag`` carries ``noai``/``noimageai``/``noml``
      (``header_directives``), unscoped or scoped to one of ``agents``;
    - ``optout.tdmrep``: ``tdm-reservation: 1`` on the response, or, with no such header, the
      origin's ``/.well-known/tdmrep.json`` reserving the URL's path (W3C TDMRep);
    - ``optout.aipref``: ``Content-Usage`` saying ``n`` to AI training, on the response or in a
      robots.txt rule of a group an agent obeys, for a path it may crawl (draft-ietf-aipref-vocab-07
      and attach-05, older tokens as their drafts defined them; the evidence names the rule and the
      draft that decided);
    - ``optout.content_signal``: a robots.txt group an agent obeys says ``Content-Signal:
      ai-train=no`` (Cloudflare's Content Signals Policy);
    - ``optout.ai_txt``: the origin's Spawning ``/ai.txt`` disallows the URL;
    - ``optout.robots``: the origin's robots.txt disallows the URL for one of ``agents``;
    - ``optout.rsl``: an RSL 1.0 licence the origin's robots.txt names (``License:``, the group of
      one of ``agents`` or the lines outside any group) or the response links (``Link: <…>;
      rel="license"; type="application/rsl+xml"``) prohibits AI training for the URL's scope, or
      licenses only other uses; one licensing it only with payment or other conditions is
      ``optout.constrained``;
    - ``optout.c2pa``: the image's C2PA/CAWG training-mining assertion says ``notAllowed``, or
      ``constrained`` with no constraint text (CAWG 1.1: then equivalent to ``notAllowed``);
    - ``optout.iptc``: the image's XMP says IPTC ``plus:DataMining`` ``DMI-PROHIBITED…`` (IPTC Photo
      Metadata Standard 2023.1+);
    - ``optout.constrained``: training allowed only under conditions, for a reviewer: those a C2PA/CAWG
      assertion states, or an RSL licence's payment, licence server or user and place terms;
    - ``optout.invalid``: a non-conformant signal (a ``tdmrep.json`` that breaks the spec or is over
      the readers' bounds, an unparsable ``Content-Usage`` or ``tdm-reservation``, a header value
      over 8 KiB, an RSL licence that is not RSL or that its URL does not serve), never taken as a
      reservation.

    A policy file that could not be read (status ``transient`` in ``policy_files``, with its
    reason) gives no finding: it is neither a reservation nor its absence, and the next run or
    ``recheck`` reads it again. Every reader is bounded in time and memory (:mod:`scrutineer.observing.optouts`).
    """

    name = "optouts"
    version = "2"
    reasons = {
        "optout.header": Reason(False, "Opted out in an X-Robots-Tag header"),
        "optout.tdmrep": Reason(False, "Opted out by TDMRep"),
        "optout.aipref": Reason(False, "Opted out by Content-Usage (aipref)"),
        "optout.content_signal": Reason(False, "Opted out by a Content-Signal in robots.txt"),
        "optout.ai_txt": Reason(False, "Opted out in ai.txt"),
        "optout.robots": Reason(False, "Opted out in robots.txt"),
        "optout.rsl": Reason(False, "Opted out by an RSL licence"),
        "optout.c2pa": Reason(False, "Opted out in the image's C2PA data"),
        "optout.iptc": Reason(False, "Opted out in the image's IPTC metadata (Data Mining)"),
        "optout.constrained": Reason(False, "Training allowed only under conditions"),
        "optout.invalid": Reason(False, "Malformed opt-out signal"),
    }
    Params = OptoutsParams
    needs = "content"
    policy_files = (*POLICY_PATHS, RSL)

    @classmethod
    def check_config(cls, params: BaseModel, config: Config) -> None:
        """``optout.c2pa`` and ``optout.constrained`` come from the images' C2PA manifests, which
        only the ``c2pa`` extra reads: without it the detector would miss them silently.

        Raises:
            MissingExtraError: the ``c2pa`` extra is not installed (one line naming it).
        """
        require("c2pa")

    def setup(self) -> None:
        self.agents = tuple(self.params.agents) if self.params.agents is not None else robots.default_agents()
        self.agent_tokens = frozenset(a.lower() for a in self.agents)
        self.directives = frozenset(d.lower() for d in self.params.header_directives)
        self._read: dict[tuple[str, str], object] = {}
        self._wheres: dict[tuple, dict] = {}

    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        columns = ("url", "checked_at", "x_robots_tag", "tdm_reservation", "tdm_policy", "content_usage", "link", "c2pa", "iptc")
        values = {n: batch.column(n).to_pylist() for n in columns}
        hits, reasons, evidence = [], [], []
        for i in range(batch.num_rows):
            row = {n: values[n][i] for n in columns}
            for signal, extra in self._signals(row):
                hits.append(i)
                reasons.append(signal.reason)
                evidence.append(evidence_json(**signal.evidence, **extra))
        if not hits:
            return empty_findings()
        rows = pa.Table.from_batches([batch]).take(pa.array(hits, pa.int64()))
        return self.findings(rows, reason=pa.array(reasons, pa.string()), evidence=pa.array(evidence, pa.string()))

    def _signals(self, row: dict) -> list[tuple[Signal, dict]]:
        """Every signal about one sample, each with the evidence of where it was read."""
        response = {"checked_at": _iso(row["checked_at"])}
        found = [
            (s, response)
            for s in (
                headers.x_robots_tag(row["x_robots_tag"], self.directives, self.agent_tokens),
                headers.content_usage(row["content_usage"]),
                tdmrep.from_headers(row["tdm_reservation"], row["tdm_policy"]),
                c2pa.judge(row["c2pa"]),
                iptc.judge(row["iptc"]),
            )
            if s
        ]
        files = self.ctx.policy_files.get(origin(row["url"]) or "", {})
        licences = {u: "Link header" for u in rsl.link_licences(row["link"])}
        for name, read in files.items():
            if name == "tdmrep.json" and row["tdm_reservation"] is not None:
                continue  # the response's own tdm-reservation header overrides the site-wide file
            if name.startswith(LICENCE_PREFIX):
                continue  # a licence holds for the URLs whose robots.txt or response names it: below
            parsed = self._parsed(read)
            if parsed is None:
                continue
            found += [(s, self._where(read)) for s in self._judge_file(name, parsed, row["url"])]
            if name == "robots.txt" and not isinstance(parsed, Signal):
                licences |= {u: by for u, by in parsed.licences.items() if u not in licences}
        for url, named_by in licences.items():
            read = self.ctx.policy_files.get(origin(url) or "", {}).get(rsl.policy_name(url))
            if read is None or read.status == "transient":
                continue  # not read (yet): the next run or recheck reads it
            where = self._where(read) | {"named_by": named_by}
            parsed = self._parsed(read)
            if parsed is None:  # named, but not served (a 4xx, or an HTML page)
                found.append((Signal("optout.invalid", {"signal": "RSL", "fault": f"the licence is not served at its URL ({read.status})"}), where))
            elif isinstance(parsed, Signal):
                found.append((parsed, where))
            elif signal := rsl.judge(parsed, row["url"]):
                found.append((signal, where))
        return found

    def _where(self, read: PolicyFile) -> dict:
        """The evidence of where a policy file was read: its URL, sha256 and read time (made once per read)."""
        key = (read.url, read.sha256, read.fetched_at)
        if key not in self._wheres:
            self._wheres[key] = {"file": read.url, "file_sha256": read.sha256, "read_at": _iso(read.fetched_at)}
        return self._wheres[key]

    def _parsed(self, read: PolicyFile) -> object | None:
        """A served policy file, parsed once per task (by name and sha256: hosts serving the same file
        share it); None if the origin did not serve one, or if it could not be read (``transient``:
        recorded in ``policy_files`` with its reason, and read again by the next run or recheck)."""
        if read.name == "tdmrep.json" and read.status == "too_large":
            return Signal("optout.invalid", {"signal": "tdmrep.json", "fault": read.error})
        if read.name.startswith(LICENCE_PREFIX) and read.status == "too_large":
            return Signal("optout.invalid", {"signal": "RSL", "fault": read.error})
        text = read.served
        if text is None:
            return None
        key = (read.name, read.sha256)
        if key not in self._read:
            if read.name == "robots.txt":
                self._read[key] = robots.RobotsPolicy(text, self.agents)
            elif read.name == "ai.txt":
                self._read[key] = ai_txt.parse(text, self.agent_tokens)
            elif read.name.startswith(LICENCE_PREFIX):
                try:
                    self._read[key] = rsl.parse(text)
                except ValueError as e:
                    self._read[key] = Signal("optout.invalid", {"signal": "RSL", "fault": str(e)})
            else:
                try:
                    self._read[key] = tdmrep.parse_file(text)
                except ValueError as e:
                    self._read[key] = Signal("optout.invalid", {"signal": "tdmrep.json", "fault": str(e)})
        return self._read[key]

    def _judge_file(self, name: str, parsed: object, url: str) -> list[Signal]:
        if isinstance(parsed, Signal):  # a non-conformant file
            return [parsed]
        if name == "robots.txt":
            return parsed.judge(url)
        if name == "ai.txt":
            return [s] if (s := ai_txt.judge(parsed, url)) else []
        return [s] if (s := tdmrep.from_file(parsed, url)) else []


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None
