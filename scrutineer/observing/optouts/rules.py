"""robots.txt's syntax (RFC 9309), read once for every policy file written in it: robots.txt itself
(``Allow``/``Disallow``, aipref ``Content-Usage``, ``Content-Signal`` and RSL ``License`` lines), Spawning's ai.txt, and the ``location``
patterns of TDMRep's ``tdmrep.json``. One reader of groups and lines, one matcher of path
patterns, both in time linear in their input, whatever a website writes.

- Lines (RFC 9309 §2.2): ``field: value``, ``#`` starts a comment; a ``User-agent`` line after any
  other rule line starts a new group, and consecutive ``User-agent`` lines share one group
  (§2.2.1). Rules before any ``User-agent`` line belong to no group and are dropped (RSL's ``License``
  and Cloudflare's ``Content-Signal`` lines there hold for every agent: :data:`UNGROUPED`). Read as protego
  reads them (the reference the tests compare with): field names are case-insensitive, protego's
  spellings are accepted (``User agent``, ``Useragent``, ``Dissallow`` …), a line with no colon is
  read as ``field value`` when its first one or two words are a known field, and ``Sitemap``/
  ``Host`` lines belong to no group and do not end one.
- Patterns (RFC 9309 §2.2.3): a pattern matches a path from its start; ``*`` matches any run of
  characters and a final ``$`` the path's end. :class:`Pattern` splits a pattern at its ``*``\\ s
  and finds each literal part left to right (``str.find``, no backtracking: a greedy leftmost match
  of each part leaves the most room to the rest, so it is exact), as protego does. Python's ``re``
  is never used on a pattern a website wrote: its backtracking is exponential in the ``*``\\ s
  (scrutineer issue 23, fault 2).
- Paths and patterns are compared after RFC 9309 §2.2.2's percent-encoding normalisation
  (:func:`normalized`): escapes of unreserved characters decoded, other characters escaped as
  UTF-8, as protego does.
- Bounds: a reader reads the first :data:`~scrutineer.observing.policy_files.MAX_BYTES` characters of a file,
  to the last whole line (RFC 9309 §2.5: a crawler must parse at least 500 KiB, and may stop
  there), and keeps at most :data:`MAX_RULES` rule lines.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import quote, urlsplit

from scrutineer.observing.policy_files import MAX_BYTES

#: Rule lines a reader keeps of one file: the largest robots.txt of the top-100 news sites
#: (2025-03-29 snapshot) has 241, so this leaves a 40-fold margin, and bounds the work of judging one
#: URL against a hostile file (each rule is at most one pass over the path).
MAX_RULES = 10_000

#: Field spellings -> the field (protego 0.7's spellings; ``content-usage`` is aipref's,
#: ``content-signal`` Cloudflare's Content Signals', ``license`` RSL's).
FIELDS = {
    **dict.fromkeys(("user-agent", "useragent", "user agent"), "user-agent"),
    **dict.fromkeys(("disallow", "dissallow", "dissalow", "disalow", "diasllow", "disallaw"), "disallow"),
    "allow": "allow",
    **dict.fromkeys(("sitemap", "sitemaps", "site-map"), "sitemap"),
    "host": "host",
    **dict.fromkeys(("crawl-delay", "crawl delay"), "crawl-delay"),
    **dict.fromkeys(("request-rate", "request rate"), "request-rate"),
    **dict.fromkeys(("visit-time", "visit time"), "visit-time"),
    "content-usage": "content-usage",
    "content-signal": "content-signal",
    "license": "license",
}
#: Fields that belong to no group and do not end one (RFC 9309 §2.2.4: "other records").
SITE_WIDE = frozenset({"sitemap", "host"})
#: Fields whose lines before any User-agent line are read too, holding for every agent: RSL's
#: ``License`` (RSL 1.0 §4.4: outside any group it is global; in a group, that group's), and
#: Cloudflare's ``Content-Signal``, whose policy states no placement (its examples put it in the
#: ``*`` group) and which some sites' generators write above the first group: a reservation a site
#: wrote for everyone is not dropped for being in no group.
UNGROUPED = frozenset({"license", "content-signal"})
#: The spellings a line without a colon may start with and still be read (``User-agent bot``):
#: protego's. aipref's ``Content-Usage`` rule and a ``Content-Signal`` line are written with their
#: colon, as robots.txt's grammar writes every rule (RFC 9309 §2.2; draft-ietf-aipref-attach-05
#: §3); without one such a line is nothing, as protego reads it, so it neither holds a preference
#: nor ends a run of User-agent lines.
SPACED = {k: v for k, v in FIELDS.items() if v not in ("content-usage", "content-signal", "license")}


def head(text: str) -> str:
    """The part of ``text`` a reader reads: all of it up to :data:`~scrutineer.observing.policy_files.MAX_BYTES`
    characters, else its first ``MAX_BYTES`` characters up to the last line break (RFC 9309 §2.5)."""
    if len(text) <= MAX_BYTES:
        return text
    text = text[:MAX_BYTES]
    cut = max(text.rfind("\n"), text.rfind("\r"))
    return text[: cut + 1] if cut >= 0 else ""


class Line(NamedTuple):
    """One rule line of a group.

    Attributes:
        agents: the group's ``User-agent`` names, lowercase, in file order (a name with a ``*``
            inside also without it, as protego reads it).
        field: the field (a key of the values of :data:`FIELDS`, or another lowercase name).
        value: the value, stripped.
        number: the line's number in the file, from 1.
    """

    agents: tuple[str, ...]
    field: str
    value: str
    number: int


def _directive(line: str) -> tuple[str, str] | None:
    """``(field, value)`` of a comment-free, stripped, non-empty line, or None (protego's reading:
    ``field: value``, else ``field value`` when the first one or two words name a field of
    :data:`SPACED`)."""
    name, colon, raw = line.partition(":")
    if colon:
        field = name.strip().lower()
        if field in FIELDS:
            return FIELDS[field], raw.strip()
        if not raw or raw[0].isspace():
            return field, raw.strip()
    words = line.split(None, 2)
    first = words[0].lower()
    if first in SPACED:
        known = 1
    elif len(words) > 1 and (pair := f"{first} {words[1].lower()}") in SPACED:
        first, known = pair, 2
    else:
        return (field, raw.strip()) if colon else None
    return SPACED[first], " ".join(line.split()[known:])


#: The line breaks of ``str.splitlines`` (protego splits lines with it; RFC 9309 §2.2 names CR, LF
#: and CRLF), each read as one LF.
_BREAK = re.compile(r"\r\n?|[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
#: The first letters of every field name protego knows (case-insensitive). A line that starts
#: otherwise is, for the groups, either nothing (no colon) or a field no reader wants, which only
#: ends a run of User-agent lines (a colon before any ``#``): its first words cannot name a known
#: field. Only the lines starting so are read one by one; the others are searched in C, each once.
_KNOWN = r"(?:user|allow|dis|diasllow|site|host|crawl|request|visit|content-usage|content-signal|license)"
#: Such a line, from its first non-blank character. Blanks exclude LF, so each try stays in its
#: line: linear in the text.
_LINE = re.compile(rf"^[^\S\n]*({_KNOWN}[^\n]*)", re.IGNORECASE | re.MULTILINE)
_OTHER_FIELD = re.compile(r"^[^#\n]*:", re.MULTILINE)


def read(text: str, fields: frozenset[str]) -> list[Line]:
    """The lines of ``fields`` in ``text``'s groups, in file order: at most :data:`MAX_RULES`, from
    the first ``MAX_BYTES`` characters (:func:`head`); lines with an empty value are dropped. With
    ``user-agent`` in ``fields``, each ``User-agent`` line is one too, its ``agents`` the names it
    adds to its group. A line of :data:`UNGROUPED` before any ``User-agent`` line is read with no
    agents (``()``: it holds for all).

    Args:
        text: a policy file's text, any size.
        fields: the fields wanted (values of :data:`FIELDS`).
    """
    lines: list[Line] = []
    names: list[str] = []  # the current group's
    agents: tuple[str, ...] | None = ()  # the same as a tuple, None until needed again
    in_agents = False  # the last line in a group was a User-agent line
    text = head(text)
    if not text.isascii() or any(c in text for c in "\r\x0b\x0c\x1c\x1d\x1e"):
        text = _BREAK.sub("\n", text)
    number, seen, gap = 1, 0, 0  # gap: where the lines after the last one read start
    for known in _LINE.finditer(text):
        number += text.count("\n", seen, seen := known.start())
        if in_agents and _OTHER_FIELD.search(text, gap, seen):
            in_agents = False  # another field between two User-agent lines ends their group
        gap = known.end()
        if (found := _directive(known[1].partition("#")[0].rstrip())) is None:
            continue
        field, value = found
        if field == "user-agent":
            if not in_agents:
                names, agents, in_agents = [], (), True
            if not value:
                continue
            name = value.lower()
            new = [name] if "*" not in name or name == "*" else [n for n in (name, name.replace("*", "")) if n]
            names += new
            agents = None
            if field in fields:
                lines.append(Line(tuple(new), field, value, number))
        elif field not in SITE_WIDE:
            in_agents = False
            if field in fields and value and names:
                agents = agents or tuple(names)
                lines.append(Line(agents, field, value, number))
            elif field in fields and value and field in UNGROUPED and not names:
                lines.append(Line((), field, value, number))  # before any group: for every agent
        if len(lines) == MAX_RULES:
            break
    return lines


_PLAIN_PATTERN = re.compile(r"[A-Za-z0-9_.~/=*-]*\$?").fullmatch
_PLAIN_PATH = re.compile(r"/(?!/)[A-Za-z0-9_.~/=-]*").fullmatch
#: Two hex digits, any case -> the byte they escape.
_BYTES = {f"{a}{b}": bytes.fromhex(f"{a}{b}") for a in "0123456789abcdefABCDEF" for b in "0123456789abcdefABCDEF"}
_KEPT_ESCAPES = ("2F", "25")  # "/" and "%": decoding them would change the path's meaning


def _unescaped(text: str) -> str:
    """``text`` with its escapes decoded as UTF-8 (errors replaced), but for ``%2F`` and ``%25``,
    whose hex is put in capitals: one pass over its percent signs."""
    first, *escaped = text.split("%")
    out = [first.encode()]
    for part in escaped:
        hexa, rest = part[:2], part[2:]
        byte = _BYTES.get(hexa)
        if byte is None:
            out.append(b"%" + part.encode())
        elif hexa.upper() in _KEPT_ESCAPES:
            out.append(b"%" + hexa.upper().encode() + rest.encode())
        else:
            out.append(byte + rest.encode())
    return b"".join(out).decode("utf-8", "replace")


def normalized(text: str, pattern: bool = False) -> str:
    """``text`` with RFC 9309 §2.2.2's percent-encoding: escapes other than ``%2F`` and ``%25``
    decoded, then every character but the unreserved ones, ``/``, ``%`` and ``=`` (and ``*`` in a
    pattern) escaped as UTF-8, hex in capitals; a pattern's final ``$`` is kept, and a pattern
    written as an ``http(s)://`` URL gets a leading ``/`` (protego's reading). Linear in ``text``."""
    if (_PLAIN_PATTERN if pattern else _PLAIN_PATH)(text):
        return text
    anchor = "$" if pattern and text.endswith("$") else ""
    body = text.removesuffix(anchor)
    if pattern and body.startswith(("https://", "http://")):
        body = f"/{body}"
    if "%" in body:
        body = _unescaped(body)
    return quote(body, safe="/%=*" if pattern else "/%=") + anchor


@lru_cache(maxsize=1 << 12)
def url_path(url: str, query: bool = True) -> str:
    """The part of ``url`` that patterns match: its path (``/`` if empty) and, with ``query``, its
    ``?query`` (RFC 9309 §2.2.2), normalised (:func:`normalized`)."""
    url = url.partition("#")[0]
    parts = urlsplit(url)
    path = normalized(parts.path + (f"?{parts.query}" if query and "?" in url else ""))
    return path if path.startswith("/") else f"/{path}"


class Pattern:
    """A path pattern (RFC 9309 §2.2.3), normalised (:func:`normalized`) and split at its ``*``\\ s.

    :meth:`match` costs at most one pass of ``str.find`` over the path per literal part, however
    many ``*``\\ s the pattern has: no backtracking.

    Attributes:
        text: the normalised pattern; ``len(text)`` is its priority (RFC 9309 §2.2.2: the longest
            match decides).
    """

    __slots__ = ("anchored", "parts", "text")

    def __init__(self, pattern: str, normal: bool = False) -> None:
        """``pattern`` as a website wrote it, or, with ``normal``, already :func:`normalized`."""
        self.text = pattern if normal else normalized(pattern, pattern=True)
        self.anchored = self.text.endswith("$")
        self.parts = self.text.removesuffix("$").split("*")

    def match(self, path: str) -> bool:
        """Whether the pattern matches ``path`` (normalised: :func:`url_path`) from its start."""
        parts = self.parts
        first = parts[0]
        if len(parts) == 1:
            return path == first if self.anchored else path.startswith(first)
        if not path.startswith(first):
            return False
        pos = len(first)
        for part in parts[1:-1]:
            if part:
                found = path.find(part, pos)
                if found < 0:
                    return False
                pos = found + len(part)
        last = parts[-1]
        if self.anchored:
            return len(path) - len(last) >= pos and path.endswith(last)
        return not last or path.find(last, pos) >= 0
