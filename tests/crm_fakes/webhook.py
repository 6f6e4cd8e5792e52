"""A fake webhook receiver that checks Leadtrail's signature as a real receiver should.

``POST {fake.url}`` (path ``/hooks/crm``): the ``X-Leadtrail-Timestamp`` and
``X-Leadtrail-Signature`` headers must verify with :func:`verify_webhook` against ``secret``
(else 401 ``{"error": <reason>}``, and the request goes to ``rejected``); the body must be a
``crm.lead_upserted`` / ``crm.lead_deleted`` event. A repeated ``X-Leadtrail-Delivery`` id is
acknowledged without being applied again.

Upserts land in ``records`` (by record id) and are answered according to ``respond``:
``"record_id"`` -> 200 ``{"record_id": "wh-<n>"}`` (kept per lead id), ``"empty"`` -> 204,
``"text"`` -> 200 with a non-JSON body. Deletes remove the record (404 when unknown).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from services.crm_sync.adapters.webhook import (
    EVENT_DELETED,
    EVENT_UPSERTED,
    HEADER_DELIVERY,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    WebhookVerificationError,
    verify_webhook,
)
from tests.crm_fakes._server import FakeServer

__all__ = ["DEFAULT_SECRET", "PATH", "WebhookReceiverFake"]

DEFAULT_SECRET = "whsec_fake_0123456789abcdef0123456789abcdef"
PATH = "/hooks/crm"


class WebhookReceiverFake(FakeServer):
    """``records``: record id -> lead; ``events``: every accepted event; ``rejected``:
    (reason, raw body) of refused requests; ``deleted``: record ids deleted."""

    vendor = "webhook"

    def __init__(
        self,
        *,
        secret: str = DEFAULT_SECRET,
        tolerance_s: int = 300,
        respond: Literal["record_id", "empty", "text"] = "record_id",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret = secret
        self.tolerance_s = tolerance_s
        self.respond = respond
        self.clock = clock
        self.records: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.rejected: list[tuple[str, bytes]] = []
        self.deleted: list[str] = []
        self._by_lead: dict[str, str] = {}
        self._seen: set[str] = set()
        self._ids = itertools.count(1)
        super().__init__()

    @property
    def url(self) -> str:
        return self.base_url + PATH

    def clear_store(self) -> None:
        self._ids = itertools.count(1)
        self.records.clear()
        self.events.clear()
        self.rejected.clear()
        self.deleted.clear()
        self._by_lead.clear()
        self._seen.clear()
        self.respond = "record_id"

    def build_app(self) -> Starlette:
        return Starlette(routes=[Route(PATH, self._receive, methods=["POST"])])

    def error_response(self, status: int, message: str, code: str | None) -> Response:
        return JSONResponse({"error": message}, status_code=status)

    async def _receive(self, request: Request) -> Response:
        raw = await request.body()
        try:
            verify_webhook(
                self.secret.encode("utf-8"),
                request.headers.get(HEADER_TIMESTAMP, ""),
                raw,
                request.headers.get(HEADER_SIGNATURE, ""),
                self.clock(),
                self.tolerance_s,
            )
        except WebhookVerificationError as error:
            self.rejected.append((str(error), raw))
            return self.error_response(401, str(error), None)
        event = json.loads(raw)
        delivery = request.headers.get(HEADER_DELIVERY, "")
        if delivery != event.get("id"):
            return self.error_response(400, "delivery id does not match the body", None)
        lead = event.get("lead")
        if not isinstance(lead, dict) or event.get("type") not in (EVENT_UPSERTED, EVENT_DELETED):
            return self.error_response(400, "not a Leadtrail CRM event", None)
        replay = delivery in self._seen
        self._seen.add(delivery)
        if event["type"] == EVENT_DELETED:
            return self._delete(lead, replay)
        return self._upsert(event, lead, replay)

    def _upsert(self, event: dict[str, Any], lead: dict[str, Any], replay: bool) -> Response:
        lead_id = str(lead.get("lead_id"))
        if self.respond == "record_id":
            record_id = self._by_lead.get(lead_id) or f"wh-{next(self._ids)}"
        else:  # the sender can't learn an id from us: it will use its own
            record_id = str(lead.get("record_id") or lead_id)
        if not replay:
            self.events.append(event)
            self._by_lead[lead_id] = record_id
            self.records[record_id] = lead
        if self.respond == "empty":
            return Response(status_code=204)
        if self.respond == "text":
            return PlainTextResponse("ok")
        return JSONResponse({"record_id": record_id})

    def _delete(self, lead: dict[str, Any], replay: bool) -> Response:
        record_id = str(lead.get("record_id"))
        if record_id not in self.records:
            return (
                Response(status_code=204) if replay else self.error_response(404, "unknown", None)
            )
        self.events.append({"type": EVENT_DELETED, "lead": lead})
        removed = self.records.pop(record_id)
        self._by_lead.pop(str(removed.get("lead_id")), None)
        self.deleted.append(record_id)
        return Response(status_code=204)
