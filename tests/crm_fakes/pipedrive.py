"""A fake Pipedrive API v1 (persons and leads), in memory.

Endpoints: ``POST /v1/persons`` (201), ``GET /v1/persons/search`` (``term``, ``fields``,
``exact_match``), ``GET|PUT|DELETE /v1/persons/{id}`` (DELETE marks the person deleted:
``deleted_persons``), ``GET|POST /v1/leads`` (``person_id`` filter; ``start``/``limit``
pagination), ``GET|DELETE /v1/leads/{id}``.

Checks: the token as ``?api_token=``, an ``x-api-token`` header or ``Authorization: Bearer``
(401 ``unauthorized access``); ``name`` required on persons; emails/phones as a string or a list
of strings or ``{"value", "primary", "label"}`` objects; a lead needs a ``title`` and an existing
``person_id`` (or ``organization_id``) and a JSON body; search terms of at least 2 characters
(1 with ``exact_match``). Unknown person fields are ignored, as Pipedrive does, unless they are
registered ``custom_fields`` keys. Answers are ``{"success": true, "data": ...}`` or ``{"success":
false, "error", "error_info", "data": null, "additional_data": null}``.

Rate limit: every response has ``x-ratelimit-limit``, ``x-ratelimit-remaining`` and
``x-ratelimit-reset`` (seconds left in the window); past the limit the answer is 429 with
``Retry-After``. Set a small window with :meth:`PipedriveFake.rate_limit`.
"""

from __future__ import annotations

import itertools
import math
import time
import uuid
from collections.abc import Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.crm_fakes._server import FakeServer, RecordedRequest

__all__ = ["DEFAULT_TOKEN", "PipedriveFake"]

DEFAULT_TOKEN = "0123456789abcdeffedcba98765432100fake000"
ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
PERSON_FIELDS = frozenset({"name", "owner_id", "org_id", "email", "phone", "label", "visible_to",
                           "marketing_status", "add_time", "first_name", "last_name"})  # fmt: skip
DEFAULT_RATE = (80, 2.0)


class _RejectedError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _ok(data: Any, status: int = 200, additional: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"success": True, "data": data}
    if additional is not None:
        body["additional_data"] = additional
    return JSONResponse(body, status_code=status)


def _channel(raw: Any, name: str) -> list[dict[str, Any]]:
    """A person's emails or phones as Pipedrive stores them."""
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise _RejectedError(400, f"Invalid {name}: expected a string or a list")
    result: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        entry = {"value": item} if isinstance(item, str) else item
        if not isinstance(entry, dict) or not isinstance(entry.get("value"), str):
            raise _RejectedError(400, f"Invalid {name}: each item needs a string value")
        if entry["value"] == "":
            continue
        primary = entry.get("primary", index == 0)
        result.append(
            {
                "value": entry["value"],
                "primary": primary in (True, "true", 1),
                "label": str(entry.get("label") or "work"),
            }
        )
    return result


class PipedriveFake(FakeServer):
    """``persons`` (live) and ``deleted_persons`` by int id; ``leads`` by uuid."""

    vendor = "pipedrive"

    def __init__(self, *, token: str = DEFAULT_TOKEN, custom_fields: Iterable[str] = ()) -> None:
        self.token = token
        self.custom_fields = frozenset(custom_fields)
        self.persons: dict[int, dict[str, Any]] = {}
        self.deleted_persons: dict[int, dict[str, Any]] = {}
        self.leads: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._limit, self._window_s = DEFAULT_RATE
        self._window_start = 0.0
        self._window_count = 0
        super().__init__()

    def clear_store(self) -> None:
        self._ids = itertools.count(1)
        self.persons.clear()
        self.deleted_persons.clear()
        self.leads.clear()
        self.rate_limit(*DEFAULT_RATE)

    def rate_limit(self, limit: int, window_s: float) -> None:
        """Allow ``limit`` requests per ``window_s`` seconds (the window starts at the first)."""
        self._limit, self._window_s = limit, window_s
        self._window_start, self._window_count = 0.0, 0

    # -- framework hooks ---------------------------------------------------------------
    def build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/persons", self._create_person, methods=["POST"]),
                Route("/v1/persons/search", self._search, methods=["GET"]),
                Route(
                    "/v1/persons/{person_id:int}", self._person, methods=["GET", "PUT", "DELETE"]
                ),
                Route("/v1/leads", self._leads, methods=["GET", "POST"]),
                Route("/v1/leads/{lead_id}", self._lead, methods=["GET", "DELETE"]),
            ]
        )

    def error_response(self, status: int, message: str, code: str | None) -> Response:
        body: dict[str, Any] = {
            "success": False,
            "error": message,
            "error_info": ERROR_INFO,
            "data": None,
            "additional_data": None,
        }
        if code is not None:
            body["code"] = code
        if status == 401:
            body["errorCode"] = 401
        return JSONResponse(body, status_code=status)

    def _reset_in(self, now: float) -> int:
        return max(0, math.ceil(self._window_start + self._window_s - now))

    async def intercept(self, request: RecordedRequest) -> Response | None:
        offered = {
            request.query.get("api_token"),
            request.headers.get("x-api-token"),
            request.headers.get("authorization", "").removeprefix("Bearer "),
        }
        if self.token not in offered:
            return self.error_response(401, "unauthorized access", None)
        now = time.monotonic()
        if now >= self._window_start + self._window_s:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        if self._window_count > self._limit:
            response = self.error_response(429, "Request over limit", None)
            response.headers["Retry-After"] = str(max(1, self._reset_in(now)))
            return response
        return None

    def extra_headers(self, request: RecordedRequest) -> dict[str, str]:
        now = time.monotonic()
        return {
            "x-ratelimit-limit": str(self._limit),
            "x-ratelimit-remaining": str(max(0, self._limit - self._window_count)),
            "x-ratelimit-reset": str(self._reset_in(now)),
        }

    # -- persons -----------------------------------------------------------------------
    async def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise _RejectedError(400, "Malformed JSON body") from None
        if not isinstance(body, dict):
            raise _RejectedError(400, "Expected a JSON object")
        return body

    def _apply(self, person: dict[str, Any], body: dict[str, Any]) -> None:
        for name, value in body.items():
            if name == "name":
                if not isinstance(value, str) or not value.strip():
                    raise _RejectedError(400, "Name must be given.")
                person["name"] = value
            elif name in ("email", "phone"):
                person[name] = _channel(value, name)
            elif name in PERSON_FIELDS or name in self.custom_fields:
                person[name] = value

    async def _create_person(self, request: Request) -> Response:
        try:
            body = await self._body(request)
            if "name" not in body:
                raise _RejectedError(400, "Name must be given.")
            person: dict[str, Any] = {"email": [], "phone": []}
            self._apply(person, body)
        except _RejectedError as error:
            return self.error_response(error.status, error.message, None)
        person_id = next(self._ids)
        self.persons[person_id] = {"id": person_id, **person, "active_flag": True}
        return _ok(self.persons[person_id], 201)

    async def _person(self, request: Request) -> Response:
        person_id: int = request.path_params["person_id"]
        person = self.persons.get(person_id)
        if person is None:
            return self.error_response(404, "Person not found", None)
        if request.method == "GET":
            return _ok(person)
        if request.method == "DELETE":
            self.deleted_persons[person_id] = {**self.persons.pop(person_id), "active_flag": False}
            return _ok({"id": person_id})
        try:
            changed = dict(person)
            self._apply(changed, await self._body(request))
        except _RejectedError as error:
            return self.error_response(error.status, error.message, None)
        self.persons[person_id] = changed
        return _ok(changed)

    async def _search(self, request: Request) -> Response:
        term = request.query_params.get("term", "")
        exact = request.query_params.get("exact_match", "").lower() in ("true", "1")
        if len(term) < (1 if exact else 2):
            message = "Search term must be at least 2 characters long (1 with exact_match)"
            return self.error_response(400, message, None)
        fields = set(request.query_params.get("fields", "email,phone,name").split(","))
        wanted = term.lower()

        def matches(text: str) -> bool:
            return text.lower() == wanted if exact else wanted in text.lower()

        items = []
        for person in self.persons.values():
            emails = [item["value"] for item in person.get("email", [])]
            phones = [item["value"] for item in person.get("phone", [])]
            found = (
                ("email" in fields and any(matches(value) for value in emails))
                or ("phone" in fields and any(matches(value) for value in phones))
                or ("name" in fields and matches(person.get("name", "")))
            )
            if found:
                item = {"id": person["id"], "type": "person", "name": person.get("name"),
                        "emails": emails, "phones": phones}  # fmt: skip
                items.append({"result_score": 1.0, "item": item})
        limit = int(request.query_params.get("limit", "100"))
        pagination = {"start": 0, "limit": limit, "more_items_in_collection": len(items) > limit}
        return _ok({"items": items[:limit]}, additional={"pagination": pagination})

    # -- leads -------------------------------------------------------------------------
    async def _leads(self, request: Request) -> Response:
        if request.method == "GET":
            return self._list_leads(request)
        try:
            lead = await self._new_lead(request)
        except _RejectedError as error:
            return self.error_response(error.status, error.message, None)
        self.leads[lead["id"]] = lead
        return _ok(lead, 201)

    async def _new_lead(self, request: Request) -> dict[str, Any]:
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise _RejectedError(400, "Content-Type must be application/json")
        body = await self._body(request)
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            raise _RejectedError(400, "Lead title must be given")
        person_id = body.get("person_id")
        organization_id = body.get("organization_id")
        if person_id is None and organization_id is None:
            raise _RejectedError(400, "A lead must be linked to a person or an organization")
        if person_id is not None and (
            not isinstance(person_id, int) or person_id not in self.persons
        ):
            raise _RejectedError(400, f"Person {person_id} does not exist")
        return {
            "id": str(uuid.uuid4()),
            "title": title,
            "person_id": person_id,
            "organization_id": organization_id,
            "origin_id": body.get("origin_id"),
            "source_name": "API",
            "is_archived": False,
        }

    def _list_leads(self, request: Request) -> Response:
        wanted = request.query_params.get("person_id")
        start = int(request.query_params.get("start", "0"))
        limit = min(500, int(request.query_params.get("limit", "100")))
        leads = [
            lead
            for lead in self.leads.values()
            if wanted is None or str(lead.get("person_id")) == wanted
        ]
        page = leads[start : start + limit]
        more = start + limit < len(leads)
        pagination: dict[str, Any] = {"start": start, "limit": limit,
                                      "more_items_in_collection": more}  # fmt: skip
        if more:
            pagination["next_start"] = start + limit
        return _ok(page, additional={"pagination": pagination})

    async def _lead(self, request: Request) -> Response:
        lead_id = request.path_params["lead_id"]
        if lead_id not in self.leads:
            return self.error_response(404, "Lead not found", None)
        if request.method == "DELETE":
            del self.leads[lead_id]
            return _ok({"id": lead_id})
        return _ok(self.leads[lead_id])
