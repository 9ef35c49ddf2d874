"""What request bodies the review app takes: JSON (the API) and URL-encoded forms (the pages,
htmx), at most :data:`MAX_BODY` bytes, forms in UTF-8 (issue 23, fault 9).

:class:`RequestBodies` checks a body before anything reads it: asgi-csrf, which looks for the
CSRF token in a form, fails with a traceback on a multipart body (python-multipart's
``FormParser`` no longer takes its ``FileClass``), on a multipart type without a boundary and on
a form that is not UTF-8. So a body of another type is refused with 415, a larger one with 413,
a form that is not UTF-8 with 400, each with ``{"detail": message}`` on ``/api/`` and as text
elsewhere. Nothing else in the app reads a body.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The largest request body read, in bytes. The largest the app needs is a flag or a decision
#: with a note of :data:`scrutineer.crowd.api.NOTE_CHARS` (4,000) characters: 48,000 bytes as a URL-encoded
#: form of 4-byte characters (each ``%XX`` three times over), with room left for a long URL.
MAX_BODY = 256 * 1024
#: The media types of the bodies the app reads.
JSON, FORM = "application/json", "application/x-www-form-urlencoded"
#: The methods that change state (not safe: RFC 9110 §9.2.1): the requests whose bodies the app
#: reads, and that :class:`scrutineer.crowd.app.SameOrigin` checks.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RequestBodies:
    """ASGI middleware admitting only the request bodies the app reads (module docstring); the
    body it read is handed on whole."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        media = headers.get("content-type", "").partition(";")[0].strip().lower()
        if media not in ("", JSON, FORM):
            await refuse(scope, receive, send, 415, f"a request body must be {JSON} or {FORM}")
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            await refuse(scope, receive, send, 413, f"a request body must be at most {MAX_BODY} bytes")
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                await refuse(scope, receive, send, 413, f"a request body must be at most {MAX_BODY} bytes")
                return
            more = message.get("more_body", False)
        if media == FORM and not _utf8_form(bytes(body)):
            await refuse(scope, receive, send, 400, "a form must be UTF-8 (and its %-escapes too)")
            return
        replay: list[Message] = [{"type": "http.request", "body": bytes(body), "more_body": False}]

        async def replayed() -> Message:
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)


def _utf8_form(body: bytes) -> bool:
    """Whether a URL-encoded form's bytes, and the bytes its %-escapes stand for, are UTF-8."""
    try:
        parse_qsl(body.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError):
        return False
    return True


async def refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    """Answer a request, from ASGI middleware, with ``status``: ``{"detail": message}`` on ``/api/``,
    the message as text elsewhere."""
    refused = JSONResponse({"detail": message}, status) if scope["path"].startswith("/api/") else PlainTextResponse(message, status)
    await refused(scope, receive, send)
