"""A fake HubSpot CRM v3 contacts API, in memory, as HubSpot documents it.

Endpoints: ``POST /crm/v3/objects/contacts`` (201; 409 ``Contact already exists. Existing ID:
<id>`` for a taken email), ``GET|PATCH|DELETE /crm/v3/objects/contacts/{id}`` (PATCH: ``""``
clears a property; DELETE archives, 204 even if unknown), ``POST .../contacts/batch/upsert``
(``idProperty`` ``email`` only), ``POST .../contacts/gdpr-delete`` (``{"objectId"}`` or
``{"objectId": email, "idProperty": "email"}``; an unknown email is blocklisted, as documented).

Checks: ``Authorization: Bearer <token>`` (401 ``INVALID_AUTHENTICATION``), JSON bodies,
properties must exist (the standard ones plus ``custom_properties``; else 400
``VALIDATION_ERROR`` with ``PROPERTY_DOESNT_EXIST``), string values, and email syntax.
Errors are ``{"status": "error", "message", "correlationId", "category"}``; every response
carries the ``X-HubSpot-RateLimit-*`` interval headers.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.crm_fakes._server import FakeServer, RecordedRequest

__all__ = ["DEFAULT_TOKEN", "STANDARD_PROPERTIES", "HubSpotFake"]

DEFAULT_TOKEN = "pat-eu1-fake-hubspot-token"
STANDARD_PROPERTIES = frozenset(
    {"email", "firstname", "lastname", "phone", "mobilephone", "company", "jobtitle",
     "website", "lifecyclestage", "hs_lead_status", "city", "country"}
)  # fmt: skip
CONTACTS = "/crm/v3/objects/contacts"
RATE_INTERVAL_MS = 10_000
RATE_MAX = 190
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CATEGORIES = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    409: "CONFLICT",
}


class _RejectedError(Exception):
    def __init__(self, status: int, message: str, category: str) -> None:
        super().__init__(message)
        self.status, self.message, self.category = status, message, category


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HubSpotFake(FakeServer):
    """``records``: live contacts by id (properties without empty values); ``archived``: the
    archived ones; ``gdpr_deleted``: ids removed by GDPR delete; ``blocklist``: emails."""

    vendor = "hubspot"

    def __init__(
        self, *, token: str = DEFAULT_TOKEN, custom_properties: Iterable[str] = ()
    ) -> None:
        self.token = token
        self.known_properties = STANDARD_PROPERTIES | frozenset(custom_properties)
        self.records: dict[str, dict[str, str]] = {}
        self.archived: dict[str, dict[str, str]] = {}
        self.gdpr_deleted: list[str] = []
        self.blocklist: set[str] = set()
        self._ids = itertools.count(1001)
        self._meta: dict[str, dict[str, str]] = {}
        super().__init__()

    def clear_store(self) -> None:
        self._ids = itertools.count(1001)
        self.records.clear()
        self.archived.clear()
        self.gdpr_deleted.clear()
        self.blocklist.clear()
        self._meta.clear()

    def find_by_email(self, email: str) -> str | None:
        """Id of the live contact with this email (case-insensitive), if any."""
        wanted = email.strip().lower()
        for record_id, properties in self.records.items():
            if properties.get("email", "").lower() == wanted:
                return record_id
        return None

    # -- framework hooks ---------------------------------------------------------------
    def build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(CONTACTS, self._create, methods=["POST"]),
                Route(f"{CONTACTS}/batch/upsert", self._batch_upsert, methods=["POST"]),
                Route(f"{CONTACTS}/gdpr-delete", self._gdpr_delete, methods=["POST"]),
                Route(f"{CONTACTS}/{{contact_id}}", self._one, methods=["GET", "PATCH", "DELETE"]),
            ]
        )

    def error_response(self, status: int, message: str, code: str | None) -> Response:
        body: dict[str, Any] = {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.uuid4()),
        }
        if status == 429:
            policy = code or "TEN_SECONDLY_ROLLING"
            body |= {"errorType": "RATE_LIMIT", "policyName": policy}
            body["message"] = f"You have reached your {policy.lower()} limit."
        else:
            body["category"] = code or _CATEGORIES.get(status, "INTERNAL_ERROR")
        return JSONResponse(body, status_code=status)

    async def intercept(self, request: RecordedRequest) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return self.error_response(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                "INVALID_AUTHENTICATION",
            )
        return None

    def extra_headers(self, request: RecordedRequest) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(RATE_INTERVAL_MS),
            "X-HubSpot-RateLimit-Max": str(RATE_MAX),
            "X-HubSpot-RateLimit-Remaining": str(max(0, RATE_MAX - len(self.requests))),
        }

    # -- helpers -----------------------------------------------------------------------
    async def _json(self, request: Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            raise _RejectedError(400, "Invalid input JSON on line 1", "VALIDATION_ERROR") from None

    def _properties(self, raw: Any) -> dict[str, str]:
        if not isinstance(raw, dict):
            message = "Invalid input: properties must be an object"
            raise _RejectedError(400, message, "VALIDATION_ERROR")
        problems: list[str] = []
        clean: dict[str, str] = {}
        for name, value in raw.items():
            if name not in self.known_properties:
                problems.append(
                    f'{{"isValid":false,"message":"Property \\"{name}\\" does not exist",'
                    f'"error":"PROPERTY_DOESNT_EXIST","name":"{name}"}}'
                )
            elif not isinstance(value, str):
                problems.append(f'{{"isValid":false,"error":"INVALID_TYPE","name":"{name}"}}')
            elif name == "email" and value and not _EMAIL.match(value):
                problems.append(
                    f'{{"isValid":false,"message":"Email address {value} is invalid",'
                    f'"error":"INVALID_EMAIL","name":"email"}}'
                )
            else:
                clean[name] = value
        if problems:
            message = f"Property values were not valid: [{','.join(problems)}]"
            raise _RejectedError(400, message, "VALIDATION_ERROR")
        return clean

    def _conflict(self, email: str | None, record_id: str | None) -> None:
        if not email:
            return
        existing = self.find_by_email(email)
        if existing is not None and existing != record_id:
            message = f"Contact already exists. Existing ID: {existing}"
            raise _RejectedError(409, message, "CONFLICT")

    def _view(self, record_id: str, *, archived: bool = False) -> dict[str, Any]:
        properties = (self.archived if archived else self.records)[record_id]
        meta = self._meta[record_id]
        return {
            "id": record_id,
            "properties": {**properties, "hs_object_id": record_id},
            "createdAt": meta["created"],
            "updatedAt": meta["updated"],
            "archived": archived,
        }

    def _store(self, record_id: str | None, changes: dict[str, str]) -> str:
        """Apply ``changes`` (``""`` removes a property) to a record, new when id is None."""
        now = _now()
        if record_id is None:
            record_id = str(next(self._ids))
            self.records[record_id] = {}
            self._meta[record_id] = {"created": now, "updated": now}
        properties = self.records[record_id]
        for name, value in changes.items():
            if value == "":
                properties.pop(name, None)
            else:
                properties[name] = value
        self._meta[record_id]["updated"] = now
        return record_id

    def _invalid(self, error: _RejectedError) -> Response:
        return self.error_response(error.status, error.message, error.category)

    # -- routes ------------------------------------------------------------------------
    async def _create(self, request: Request) -> Response:
        try:
            body = await self._json(request)
            if not isinstance(body, dict):
                raise _RejectedError(400, "Invalid input: expected an object", "VALIDATION_ERROR")
            properties = self._properties(body.get("properties", {}))
            self._conflict(properties.get("email"), None)
        except _RejectedError as error:
            return self._invalid(error)
        record_id = self._store(None, properties)
        return JSONResponse(self._view(record_id), status_code=201)

    async def _one(self, request: Request) -> Response:
        record_id = request.path_params["contact_id"]
        if request.method == "DELETE":
            if record_id in self.records:
                self.archived[record_id] = self.records.pop(record_id)
            return Response(status_code=204)
        if record_id not in self.records:
            return self.error_response(404, "resource not found", "OBJECT_NOT_FOUND")
        if request.method == "GET":
            return JSONResponse(self._view(record_id))
        try:
            body = await self._json(request)
            if not isinstance(body, dict):
                raise _RejectedError(400, "Invalid input: expected an object", "VALIDATION_ERROR")
            properties = self._properties(body.get("properties", {}))
            self._conflict(properties.get("email"), record_id)
        except _RejectedError as error:
            return self._invalid(error)
        self._store(record_id, properties)
        return JSONResponse(self._view(record_id))

    async def _batch_upsert(self, request: Request) -> Response:
        started = _now()
        try:
            body = await self._json(request)
            inputs = body.get("inputs") if isinstance(body, dict) else None
            if not isinstance(inputs, list) or not 1 <= len(inputs) <= 100:
                raise _RejectedError(400, "inputs must hold 1 to 100 items", "VALIDATION_ERROR")
            plans: list[tuple[str, dict[str, str]]] = []
            for item in inputs:
                if not isinstance(item, dict) or item.get("idProperty") != "email":
                    raise _RejectedError(
                        400,
                        "idProperty must name a unique property; this fake supports email",
                        "VALIDATION_ERROR",
                    )
                email = item.get("id")
                if not isinstance(email, str) or not _EMAIL.match(email):
                    message = f"Email address {email} is invalid"
                    raise _RejectedError(400, message, "VALIDATION_ERROR")
                plans.append((email, self._properties(item.get("properties", {}))))
        except _RejectedError as error:
            return self._invalid(error)
        results = []
        for email, properties in plans:
            existing = self.find_by_email(email)
            record_id = self._store(existing, {**properties, "email": email.lower()})
            results.append({**self._view(record_id), "new": existing is None})
        return JSONResponse(
            {
                "status": "COMPLETE",
                "results": results,
                "startedAt": started,
                "completedAt": _now(),
            }
        )

    async def _gdpr_delete(self, request: Request) -> Response:
        try:
            body = await self._json(request)
        except _RejectedError as error:
            return self._invalid(error)
        object_id = body.get("objectId") if isinstance(body, dict) else None
        if not isinstance(object_id, str) or not object_id:
            return self.error_response(400, "objectId is required", "VALIDATION_ERROR")
        if body.get("idProperty") == "email":
            found = self.find_by_email(object_id)
            if found is None:
                self.blocklist.add(object_id.lower())
                return Response(status_code=204)
            object_id = found
        elif body.get("idProperty") not in (None, "hs_object_id"):
            return self.error_response(400, "unsupported idProperty", "VALIDATION_ERROR")
        if object_id in self.records:
            del self.records[object_id]
        elif object_id in self.archived:
            del self.archived[object_id]
        else:
            return self.error_response(404, "resource not found", "OBJECT_NOT_FOUND")
        self._meta.pop(object_id, None)
        self.gdpr_deleted.append(object_id)
        return Response(status_code=204)
