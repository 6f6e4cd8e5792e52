"""JSON request bodies are read strictly: what Python's ``json`` module tolerates beyond RFC 8259
is a 422, never silently turned into something else.

Python reads ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON at all), turns ``1e400`` into
``inf`` (which reads back as ``null``), keeps integers of any size up to 4,300 digits (MongoDB
and most clients stop at 64 bits), and lets the last of two equal keys win. :class:`StrictJSON`
refuses all of these before the route sees the body, with the same problem document as any
other invalid body (``validation-error``, code ``json_invalid``). Bodies that are not JSON at
all are left to FastAPI, which answers them as before.
"""

from __future__ import annotations

import json
from email.message import Message as MimeMessage
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.http import problem_response

__all__ = ["INT64_MAX", "INT64_MIN", "StrictJSON", "StrictJSONError", "strict_loads"]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class StrictJSONError(ValueError):
    """Valid for Python's ``json`` module, not for this API."""


def _refuse_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise StrictJSONError(f"the number {text[:40]} is out of range")
    return value


def _int64(text: str) -> int:
    # the length first: converting thousands of digits is itself the cost to avoid
    if len(text.lstrip("-")) > 19 or not INT64_MIN <= (value := int(text)) <= INT64_MAX:
        raise StrictJSONError(f"the integer {text[:40]}... does not fit in 64 bits")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise StrictJSONError(f"the key {key[:64]!r} appears twice in one object")
            seen.add(key)
    return found


def strict_loads(body: bytes | str) -> Any:
    """``json.loads``, refusing non-finite numbers, integers beyond 64 bits and duplicate keys
    (:class:`StrictJSONError`); other malformed JSON raises ``json.JSONDecodeError`` as usual."""
    return json.loads(
        body,
        parse_constant=_refuse_constant,
        parse_float=_finite_float,
        parse_int=_int64,
        object_pairs_hook=_unique_keys,
    )


def _is_json(scope: Scope) -> bool:
    """Whether FastAPI would read the body as JSON: no content type, or ``application/json``
    or ``application/<anything>+json``."""
    for key, value in scope.get("headers") or ():
        if key == b"content-type":
            mime = MimeMessage()
            mime["content-type"] = value.decode("latin-1")
            subtype = mime.get_content_subtype()
            return mime.get_content_maintype() == "application" and (
                subtype == "json" or subtype.endswith("+json")
            )
    return True


class StrictJSON:
    """ASGI middleware: reads a JSON body whole, refuses it with a 422 problem if
    :func:`strict_loads` does, else hands the same bytes on. Runs inside
    :class:`services.common.http.BodySizeLimit`, so it never buffers more than the limit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to check
                await self.app(scope, _replay(chunks, message, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body:
            try:
                strict_loads(body)
            except StrictJSONError as error:
                response = problem_response(
                    422,
                    "validation-error",
                    "The request is not valid",
                    f"body: {error}",
                    instance=scope.get("path"),
                    errors=[{"field": "body", "message": str(error), "code": "json_invalid"}],
                )
                await response(scope, receive, send)
                return
            except ValueError:  # not JSON (or not UTF-8): FastAPI answers as it always did
                pass
        await self.app(scope, _replay([body], None, receive), send)


def _replay(chunks: list[bytes], last: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that yields the body read so far as one message, then ``last`` (if
    any), then whatever the server sends next (a disconnect)."""
    pending: list[Message] = [
        {"type": "http.request", "body": b"".join(chunks), "more_body": last is not None}
    ]
    if last is not None:
        pending.append(last)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
