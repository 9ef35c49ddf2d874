"""Machine-readable reservations of text-and-data mining and AI training, one module per signal.

In the EU, text-and-data mining of lawfully accessible works is allowed unless the rightsholder
has reserved it "in an appropriate manner, such as machine-readable means" (Directive (EU)
2019/790, Art. 4(3)). Each module here judges one such signal from what the fetcher observed
(a header value, a policy file's text, the C2PA manifest of an image's bytes) and returns
:class:`Signal`\\ s: pure functions, no I/O, so a judgement can be re-derived from stored
observations.

- :mod:`~scrutineer.observing.optouts.headers`: ``X-Robots-Tag`` (``noai``, ``noimageai``, ``noml``) and IETF
  aipref ``Content-Usage`` (draft-ietf-aipref-vocab-07, the older drafts' tokens as they defined them);
- :mod:`~scrutineer.observing.optouts.tdmrep`: W3C TDMRep, the ``tdm-reservation``/``tdm-policy`` headers and
  ``/.well-known/tdmrep.json``;
- :mod:`~scrutineer.observing.optouts.ai_txt`: Spawning's ``/ai.txt``;
- :mod:`~scrutineer.observing.optouts.robots`: ``/robots.txt`` for AI crawler user agents, and the
  preferences of its groups: ``Content-Usage`` rules (draft-ietf-aipref-attach-05) and
  ``Content-Signal`` lines;
- :mod:`~scrutineer.observing.optouts.content_signals`: Cloudflare's Content Signals (``ai-train=no``);
- :mod:`~scrutineer.observing.optouts.rsl`: RSL 1.0 licences named by robots.txt or a ``Link`` header;
- :mod:`~scrutineer.observing.optouts.c2pa`: C2PA / CAWG ``training-mining`` assertions in the bytes;
- :mod:`~scrutineer.observing.optouts.iptc`: IPTC ``plus:DataMining`` in the image's XMP;
- :mod:`~scrutineer.observing.optouts.rules`: the one reader of robots.txt's syntax (groups, lines, path
  patterns matched in linear time) behind robots.txt, ai.txt and tdmrep.json locations.

Every reader is bounded in time and memory whatever a website serves: a policy file is read up to
500 KiB (RFC 9309 §2.5) and 10,000 rules, a header value up to 8 KiB, a tdmrep.json nested up to
1,024 deep; patterns are never compiled to backtracking regular expressions; every fault is a
value (``optout.invalid``), never an exception. ``tests/test_policy_readers_fuzz.py`` holds each
reader to 50 ms of CPU per 64 KiB read on hostile input.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Signal:
    """One signal about one URL.

    Attributes:
        reason: ``optout.<signal>`` (a reservation), ``optout.invalid`` (a non-conformant signal,
            never taken as a reservation) or ``optout.constrained`` (use allowed under conditions,
            for a reviewer).
        evidence: JSON-able details: which signal, the matched rule or line, the raw value.
    """

    reason: str
    evidence: dict = field(default_factory=dict)
