"""HTTP observability every service shares: correlation ids, request metrics, ``/metrics``.

:class:`RequestObservability` is the outermost ASGI middleware of each service app. For every
HTTP request it

* takes the caller's ``X-Correlation-ID`` when it is a valid id (see
  :data:`services.common.logging.CORRELATION_ID_PATTERN`), else mints a UUIDv7; binds it (and
  ``service``) to every log line written while the request is served; returns it in the
  ``X-Correlation-ID`` response header. Routes that publish events use
  :func:`services.common.logging.current_correlation_id`, so the events carry the same id;
* counts the request and times it by route *template* (``/v1/leads/{lead_id}``, never the
  concrete path; unmatched paths are ``unmatched``), method and status;
* logs one ``request served`` line: at info for writes (POST, PUT, PATCH, DELETE), at debug
  for reads, health probes and scrapes.
"""

from __future__ import annotations

import time

import uuid_utils
from fastapi import APIRouter, Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.logging import get_logger, message_context, valid_correlation_id
from services.common.metrics import CONTENT_TYPE_LATEST, ServiceMetrics

__all__ = ["CORRELATION_HEADER", "RequestObservability", "metrics_router"]

CORRELATION_HEADER = "X-Correlation-ID"
_HEADER_KEY = CORRELATION_HEADER.lower().encode()
UNMATCHED = "unmatched"
QUIET_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
log = get_logger(__name__)


class RequestObservability:
    """ASGI middleware: correlation id in, out and in the logs; request count and latency."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation_id = ""
        for key, value in scope["headers"]:
            if key == _HEADER_KEY:
                correlation_id = value.decode("latin-1")
                break
        if not valid_correlation_id(correlation_id):
            # replaced, not refused: the request itself may be fine, only its id is unusable
            correlation_id = str(uuid_utils.uuid7())
        status = 500  # if the app raises before answering, the server answers 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(CORRELATION_HEADER, correlation_id)
            await send(message)

        started = time.perf_counter()
        with message_context(service=self.metrics.service, correlation_id=correlation_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self.finished(scope, status, time.perf_counter() - started)

    def finished(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED
        method: str = scope["method"]
        self.metrics.http_request(method, template, status, seconds)
        # Writes at info (they start a lead's trail); reads, probes and scrapes at debug.
        write = log.debug if method in QUIET_METHODS else log.info
        write(
            "request served",
            method=method,
            route=template,
            status=status,
            duration_ms=round(seconds * 1000, 3),
        )


def metrics_router(metrics: ServiceMetrics) -> APIRouter:
    router = APIRouter(tags=["observability"])

    @router.get(
        "/metrics",
        summary="Prometheus metrics (text exposition format)",
        include_in_schema=False,  # plain text for Prometheus; docs/observability.md lists them
    )
    async def get_metrics() -> Response:
        return Response(await metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router
