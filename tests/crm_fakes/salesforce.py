"""A fake Salesforce REST API for the ``Lead`` sObject, in memory.

Endpoints under ``/services/data/{vXX.X}/sobjects/Lead``: ``POST /`` (201 ``{"id", "success",
"errors"}``), ``GET|PATCH|DELETE /{id}`` (PATCH and DELETE answer 204; DELETE moves the Lead to
``recycle_bin``; a deleted Lead answers 404 ``ENTITY_IS_DELETED``, an unknown one 404
``NOT_FOUND``), and ``GET|PATCH /{externalIdField}/{value}`` (upsert: 201 created / 200 updated
with ``"created"``; 300 on several matches; 404 for a field that isn't an External ID).

Checks: ``Authorization: Bearer <token>`` (401 ``INVALID_SESSION_ID``), an API version like
``v60.0``, JSON bodies, known fields only (``INVALID_FIELD``; ``Id`` may not be sent), ``LastName``
and ``Company`` present after every write (400 ``REQUIRED_FIELD_MISSING``), field lengths
(``STRING_TOO_LONG``) and email syntax (``INVALID_EMAIL_ADDRESS``). Errors are a JSON list of
``{"message", "errorCode", "fields"}``. Every response has ``Sforce-Limit-Info:
api-usage=<requests so far>/<api_limit>``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.crm_fakes._server import FakeServer, RecordedRequest

__all__ = ["DEFAULT_TOKEN", "STANDARD_FIELDS", "SalesforceFake"]

DEFAULT_TOKEN = "00DFAKE!AQ4AQfake.salesforce.access.token"
STANDARD_FIELDS = frozenset(
    {"FirstName", "LastName", "Salutation", "Email", "Phone", "MobilePhone", "Company",
     "Title", "Description", "LeadSource", "Status", "Rating", "Industry", "Website",
     "Street", "City", "State", "PostalCode", "Country"}
)  # fmt: skip
REQUIRED = ("LastName", "Company")
LENGTHS = {
    "FirstName": 40,
    "LastName": 80,
    "Company": 255,
    "Title": 128,
    "Phone": 40,
    "Email": 80,
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_VERSION = re.compile(r"^v\d{2,3}\.0$")
_LEADS = "/services/data/{version}/sobjects/Lead"
_DEFAULT_CODES = {
    400: "INVALID_FIELD",
    401: "INVALID_SESSION_ID",
    403: "REQUEST_LIMIT_EXCEEDED",
    404: "NOT_FOUND",
    429: "REQUEST_LIMIT_EXCEEDED",
    503: "SERVER_UNAVAILABLE",
}


class _RejectedError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: list[str]) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields


class SalesforceFake(FakeServer):
    """``records``: live Leads by Id; ``recycle_bin``: deleted ones."""

    vendor = "salesforce"

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        custom_fields: Iterable[str] = (),
        external_id_fields: Iterable[str] = (),
        api_limit: int = 15_000,
    ) -> None:
        self.token = token
        self.external_id_fields = frozenset(external_id_fields)
        self.known_fields = STANDARD_FIELDS | frozenset(custom_fields) | self.external_id_fields
        self.api_limit = self._initial_api_limit = api_limit
        self.records: dict[str, dict[str, Any]] = {}
        self.recycle_bin: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        super().__init__()

    def clear_store(self) -> None:
        self._ids = itertools.count(1)
        self.records.clear()
        self.recycle_bin.clear()
        self.api_limit = self._initial_api_limit

    # -- framework hooks ---------------------------------------------------------------
    def build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(_LEADS, self._create, methods=["POST"]),
                Route(_LEADS + "/", self._create, methods=["POST"]),
                Route(_LEADS + "/{record_id}", self._one, methods=["GET", "PATCH", "DELETE"]),
                Route(_LEADS + "/{field}/{value}", self._by_external_id, methods=["GET", "PATCH"]),
            ],
        )

    def error_response(self, status: int, message: str, code: str | None) -> Response:
        error_code = code or _DEFAULT_CODES.get(status, "UNKNOWN_EXCEPTION")
        return JSONResponse([{"message": message, "errorCode": error_code}], status_code=status)

    async def intercept(self, request: RecordedRequest) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return self.error_response(401, "Session expired or invalid", "INVALID_SESSION_ID")
        return None

    def extra_headers(self, request: RecordedRequest) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={len(self.requests)}/{self.api_limit}"}

    # -- validation --------------------------------------------------------------------
    @staticmethod
    def _error(error: _RejectedError) -> Response:
        item: dict[str, Any] = {"message": error.message, "errorCode": error.code}
        if error.fields:
            item["fields"] = error.fields
        return JSONResponse([item], status_code=error.status)

    @staticmethod
    def _check_version(request: Request) -> None:
        if not _VERSION.match(request.path_params["version"]):
            raise _RejectedError(404, "NOT_FOUND", "The requested resource does not exist", [])

    async def _fields(self, request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise _RejectedError(400, "JSON_PARSER_ERROR", "Unexpected character", []) from None
        if not isinstance(body, dict):
            raise _RejectedError(400, "JSON_PARSER_ERROR", "Expected a JSON object", [])
        for name, value in body.items():
            if name == "Id":
                message = "The Id field should not be specified in the sobject data."
                raise _RejectedError(400, "INVALID_FIELD", message, [])
            if name not in self.known_fields:
                message = f"No such column '{name}' on sobject of type Lead"
                raise _RejectedError(400, "INVALID_FIELD", message, [])
            if value is not None and not isinstance(value, str | int | float | bool):
                message = f"Cannot deserialize instance of {name} from a JSON structure"
                raise _RejectedError(400, "JSON_PARSER_ERROR", message, [name])
            limit = LENGTHS.get(name)
            if isinstance(value, str) and limit is not None and len(value) > limit:
                message = f"{name}: data value too large: {value[:20]}... (max length={limit})"
                raise _RejectedError(400, "STRING_TOO_LONG", message, [name])
            if name == "Email" and value and not _EMAIL.match(str(value)):
                message = f"Email: invalid email address: {value}"
                raise _RejectedError(400, "INVALID_EMAIL_ADDRESS", message, ["Email"])
        return body

    @staticmethod
    def _merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        merged = dict(current)
        for name, value in changes.items():
            if value is None or value == "":
                merged.pop(name, None)
            else:
                merged[name] = value
        missing = [name for name in REQUIRED if not merged.get(name)]
        if missing:
            message = f"Required fields are missing: [{', '.join(missing)}]"
            raise _RejectedError(400, "REQUIRED_FIELD_MISSING", message, missing)
        return merged

    def _new_id(self) -> str:
        return f"00Q5g{next(self._ids):013d}"

    def _view(self, request: Request, record_id: str) -> dict[str, Any]:
        version = request.path_params["version"]
        record = {"Id": record_id, **self.records[record_id]}
        wanted = request.query_params.get("fields")
        if wanted:
            names = {name.strip() for name in wanted.split(",")}
            record = {name: value for name, value in record.items() if name in names}
        url = f"/services/data/{version}/sobjects/Lead/{record_id}"
        return {"attributes": {"type": "Lead", "url": url}, **record}

    def _missing(self, record_id: str) -> _RejectedError:
        if record_id in self.recycle_bin:
            return _RejectedError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
        return _RejectedError(404, "NOT_FOUND", "The requested resource does not exist", [])

    # -- routes ------------------------------------------------------------------------
    async def _create(self, request: Request) -> Response:
        try:
            self._check_version(request)
            record = self._merged({}, await self._fields(request))
        except _RejectedError as error:
            return self._error(error)
        record_id = self._new_id()
        self.records[record_id] = record
        return JSONResponse({"id": record_id, "success": True, "errors": []}, status_code=201)

    async def _one(self, request: Request) -> Response:
        record_id = request.path_params["record_id"]
        try:
            self._check_version(request)
            if record_id not in self.records:
                raise self._missing(record_id)
            if request.method == "GET":
                return JSONResponse(self._view(request, record_id))
            if request.method == "DELETE":
                self.recycle_bin[record_id] = self.records.pop(record_id)
                return Response(status_code=204)
            changes = await self._fields(request)
            self.records[record_id] = self._merged(self.records[record_id], changes)
        except _RejectedError as error:
            return self._error(error)
        return Response(status_code=204)

    async def _by_external_id(self, request: Request) -> Response:
        field, value = request.path_params["field"], request.path_params["value"]
        try:
            self._check_version(request)
            if field not in self.external_id_fields:
                message = f"Provided external ID field does not exist or is not accessible: {field}"
                raise _RejectedError(404, "NOT_FOUND", message, [])
            matches = [rid for rid, rec in self.records.items() if str(rec.get(field)) == value]
            if len(matches) > 1:
                urls = [f"/services/data/v60.0/sobjects/Lead/{rid}" for rid in matches]
                return JSONResponse(urls, status_code=300)
            if request.method == "GET":
                if not matches:
                    raise self._missing(value)
                return JSONResponse(self._view(request, matches[0]))
            changes = await self._fields(request)
            if matches:
                record_id = matches[0]
                self.records[record_id] = self._merged(self.records[record_id], changes)
                body = {"id": record_id, "success": True, "errors": [], "created": False}
                return JSONResponse(body, status_code=200)
            record = self._merged({}, {**changes, field: value})
        except _RejectedError as error:
            return self._error(error)
        record_id = self._new_id()
        self.records[record_id] = record
        body = {"id": record_id, "success": True, "errors": [], "created": True}
        return JSONResponse(body, status_code=201)
