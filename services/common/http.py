"""HTTP conventions shared by the services' APIs.

* Errors are RFC 9457 ``application/problem+json`` with a stable ``type`` per error
  (``urn:leadtrail:problem:<slug>``), a human ``title``/``detail`` and, for validation errors,
  an ``errors`` list naming each field.
* Request bodies are capped (413), requests are rate-limited per tenant (429 + ``Retry-After``),
  public routes (signed links, no API key) per client address and per link.
* Tenants authenticate with ``Authorization: Bearer <key>`` or ``X-Api-Key: <key>``;
  missing or wrong keys get 401.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts import EventEnvelope
from services.common.logging import get_logger
from services.common.publisher import EventPublisher
from services.common.settings import CommonSettings
from services.common.tenants import Tenant, TenantDirectory

log = get_logger(__name__)

__all__ = [
    "PROBLEM_JSON",
    "BodySizeLimit",
    "ProblemError",
    "PublicRateLimits",
    "RateLimiter",
    "authenticate",
    "install_problem_handlers",
    "problem_response",
    "problem_responses",
    "publish_or_503",
]

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "urn:leadtrail:problem:"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "urn:leadtrail:problem:<slug>, stable"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "code": {"type": "string"},
                },
            },
        },
    },
}


def problem_responses(codes: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem+json bodies for these statuses."""
    return {
        code: {"description": text, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}
        for code, text in codes.items()
    }


class ProblemError(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


_STATUS_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Missing or invalid API key"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


def install_problem_handlers(app: FastAPI, *, retry_after_s: int = 5) -> None:
    """Answer every error as a problem; a store that does not answer is ``503`` with
    ``Retry-After: retry_after_s``."""

    async def on_problem(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ProblemError)  # noqa: S101 (registered for ProblemError only)
        return problem_response(
            error.status,
            error.slug,
            error.title,
            error.detail,
            instance=request.url.path,
            headers=error.headers,
            **error.extensions,
        )

    async def on_validation(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)  # noqa: S101
        errors = [
            {
                "field": ".".join(str(part) for part in item.get("loc", ()) if part != "body"),
                "message": item.get("msg", ""),
                "code": item.get("type", ""),
            }
            for item in error.errors()
        ]
        return problem_response(
            422,
            "validation-error",
            "The request is not valid",
            "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors)[:1000],
            instance=request.url.path,
            errors=errors,
        )

    async def on_http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)  # noqa: S101
        slug, title = _STATUS_SLUGS.get(error.status_code, ("http-error", "HTTP error"))
        detail = error.detail if isinstance(error.detail, str) else None
        return problem_response(
            error.status_code,
            slug,
            title,
            detail if detail != title else None,
            instance=request.url.path,
            headers=dict(error.headers or {}),
        )

    async def on_store_error(request: Request, error: Exception) -> JSONResponse:
        # The document store is down, slow or wedged (the request's deadline passed), or it
        # failed. What was accepted before stays accepted: a retry with the same
        # Idempotency-Key finds it; so tell the client to retry, not that we broke.
        log.error(
            "document store failed",
            path=request.url.path,
            error_type=type(error).__name__,
            error=str(error)[:500],
        )
        return problem_response(
            503,
            "store-unavailable",
            "The document store did not answer",
            "retry later (with the same Idempotency-Key)",
            instance=request.url.path,
            headers={"Retry-After": str(retry_after_s)},
        )

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(PyMongoError, on_store_error)


class BodySizeLimit:
    """ASGI middleware: 413 for bodies over ``max_bytes``, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLargeError(self.max_bytes)
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLargeError:
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            "payload-too-large",
            "Request body too large",
            f"bodies are limited to {self.max_bytes} bytes",
            instance=scope.get("path"),
        )
        await response(scope, receive, send)


class _TooLargeError(StarletteHTTPException):
    """Raised while the body streams in. An HTTPException, so that FastAPI, reading the body
    of a chunked request (no Content-Length), passes it on to the 413 problem handler instead
    of answering 400 "There was an error parsing the body"."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"bodies are limited to {max_bytes} bytes")


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per key (per process): ``rate`` requests/s, bursts up to ``burst``.

    Keys are tenants, or for public routes client addresses and links, which anyone can make
    up: past ``max_keys`` buckets, those that have refilled (an unknown key starts full
    anyway) are forgotten, and if that is not enough, the least recently used half."""

    def __init__(
        self,
        rate: float,
        burst: int,
        now: Callable[[], float] = time.monotonic,
        *,
        max_keys: int = 100_000,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._now = now
        self._buckets: dict[str, _Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, key: str, detail: str | None = None) -> None:
        """Take a token or raise a 429 problem saying when to retry."""
        now = self._now()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget_idle(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return
        wait = math.ceil((1 - bucket.tokens) / self.rate) if self.rate > 0 else 60
        raise ProblemError(
            429,
            "rate-limited",
            "Too many requests",
            detail or f"tenant {key} is limited to {self.rate:g} requests/s",
            headers={"Retry-After": str(max(1, wait))},
        )

    def _forget_idle(self, now: float) -> None:
        refill_s = self.burst / self.rate if self.rate > 0 else math.inf
        busy = {k: b for k, b in self._buckets.items() if now - b.updated < refill_s}
        if len(busy) >= self.max_keys:
            recent = sorted(busy.items(), key=lambda item: item[1].updated)[-self.max_keys // 2 :]
            busy = dict(recent)
        self._buckets = busy


class PublicRateLimits:
    """Limits for public routes, which take no API key (the signed link is the credential):
    per client address, and per link (so one link cannot be hammered from many addresses).

    The client address is the connection's peer, or the ``X-Forwarded-For`` address when the
    peer is a proxy uvicorn trusts (``FORWARDED_ALLOW_IPS``, by default 127.0.0.1)."""

    def __init__(self, per_client: RateLimiter, per_link: RateLimiter) -> None:
        self.per_client = per_client
        self.per_link = per_link

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> PublicRateLimits:
        return cls(
            RateLimiter(settings.public_rate_limit_per_s, settings.public_rate_limit_burst),
            RateLimiter(settings.link_rate_limit_per_s, settings.link_rate_limit_burst),
        )

    def check(self, request: Request, link: str) -> None:
        address = request.client.host if request.client else "unknown"
        self.per_client.check(
            address,
            f"public links are limited to {self.per_client.rate:g} requests/s per client",
        )
        # keyed by a digest: the links themselves are credentials, not kept in memory
        self.per_link.check(
            hashlib.sha256(link.encode("utf-8", "replace")).hexdigest(),
            f"one link is limited to {self.per_link.burst} requests, then "
            f"{self.per_link.rate:g} requests/s",
        )


def authenticate(directory: TenantDirectory, request: Request) -> Tenant:
    """The calling tenant, from ``Authorization: Bearer <key>`` or ``X-Api-Key`` (else 401)."""
    key = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization", "")
    if key is None and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    tenant = directory.authenticate(key)
    if tenant is None:
        raise ProblemError(
            401,
            "unauthorized",
            "Missing or invalid API key",
            "send the tenant's key as 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return tenant


@dataclass(frozen=True)
class TenantGate:
    """Who may call a service's tenant API, and how often: its tenant directory and its
    per-tenant rate limit. A service with tenant routes hands one to the runtime
    (``Service.tenant_gate``); :data:`Caller` admits requests through it."""

    tenants: TenantDirectory
    limiter: RateLimiter

    def admit(self, request: Request) -> Tenant:
        tenant = authenticate(self.tenants, request)
        self.limiter.check(tenant.id)
        return tenant


async def current_tenant(request: Request) -> Tenant:
    """FastAPI dependency: the authenticated, rate-limited calling tenant, through the
    :class:`TenantGate` of the service serving the request."""
    gate: TenantGate | None = getattr(request.app.state, "tenant_gate", None)
    if gate is None:
        raise RuntimeError("a tenant route is mounted on a service that declares no tenant gate")
    return gate.admit(request)


Caller = Annotated[Tenant, Depends(current_tenant)]
"""A route parameter of this type is the calling tenant (401 without a valid key, 429 over
its rate)."""


async def publish_or_503(
    publisher: EventPublisher, data: BaseModel, *, within_s: float, hint: str, **kwargs: Any
) -> EventEnvelope:
    """Publish and wait for ``acks=all``; any failure to reach Kafka is a 503 problem, and
    nothing was accepted. ``hint`` tells the client how to retry."""
    try:
        return await asyncio.wait_for(publisher.publish(data, **kwargs), timeout=within_s)
    except ProblemError:
        raise
    except Exception as error:  # aiokafka raises many kinds; none of them means "accepted"
        log.error("publish failed", error_type=type(error).__name__, error=str(error))
        raise ProblemError(
            503,
            "kafka-unavailable",
            "The event log is unavailable",
            f"nothing was accepted; {hint}",
            headers={"Retry-After": "5"},
        ) from None
