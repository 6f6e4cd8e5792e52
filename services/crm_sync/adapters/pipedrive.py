"""Pipedrive API v1: a person per lead (its id is the record id), and optionally a lead.

* No record id yet: look the person up (``GET /v1/persons/search``, exact match on email, else
  on phone), then ``PUT /v1/persons/{id}`` the match or ``POST /v1/persons`` a new one, so a
  retried create finds the first person instead of making a second.
* With ``create_lead``, a first upsert also adds ``POST /v1/leads`` (title, ``person_id``,
  ``origin_id: "leadtrail:<lead id>"``) unless a lead with that origin id is already linked.
* Record id known: ``PUT /v1/persons/{id}``; None email/phone are sent as ``[]`` (cleared).
* Erasure: ``DELETE /v1/leads/{id}`` for the leads crm-sync made, then
  ``DELETE /v1/persons/{id}``. Pipedrive marks the person deleted and removes it for good after
  30 days; 404/410 counts as done.

Auth: ``api_token`` query parameter (the v1 way), the same token in an ``x-api-token`` header,
or an OAuth bearer token. Rate limits: after an answer with ``x-ratelimit-remaining: 0`` the
adapter waits ``x-ratelimit-reset`` seconds before its next call (or fails fast, transient,
if that is longer than its timeout); a 429 is transient with ``Retry-After`` (else the reset).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import httpx

from services.crm_sync.adapters._http import HttpAdapter, json_or_none
from services.crm_sync.adapters.base import CrmContact, parse_retry_after
from services.crm_sync.adapters.config import ConnectionConfig

__all__ = ["ORIGIN_PREFIX", "PipedriveAdapter", "pipedrive_person"]

PERSONS = "/v1/persons"
LEADS = "/v1/leads"
ORIGIN_PREFIX = "leadtrail:"
PLACEHOLDER = "[not provided]"
_MAX_LEAD_PAGES = 20
_PAGE = 500


def pipedrive_person(contact: CrmContact, *, clear: bool) -> dict[str, Any]:
    """A v1 person body for ``contact``, then the tenant's mapped ``extra`` (custom field keys).

    Pipedrive requires ``name``: the full name, else the email or phone, else a placeholder.
    Company and job title have no standard person field; map them through ``extra``.
    """
    body: dict[str, Any] = {
        "name": contact.full_name or contact.email or contact.phone or PLACEHOLDER
    }
    for name, value in (("email", contact.email), ("phone", contact.phone)):
        if value:
            body[name] = [{"value": value, "primary": True}]
        elif clear:
            body[name] = []
    body.update(contact.extra)
    return body


def _numeric(record_id: str) -> int | str:
    return int(record_id) if record_id.isdigit() else record_id


class PipedriveAdapter(HttpAdapter):
    kind = "pipedrive"
    vendor = "Pipedrive"

    def __init__(self, config: ConnectionConfig, client: httpx.AsyncClient | None = None) -> None:
        super().__init__(config, client)
        self._not_before = 0.0  # time.monotonic() before which the rate limit says wait

    # -- upsert ------------------------------------------------------------------------
    async def upsert(self, contact: CrmContact, record_id: str | None) -> str:
        if record_id is not None:
            return await self._put_person(record_id, pipedrive_person(contact, clear=True))
        found = await self._find_person(contact)
        if found is None:
            what = "create person"
            response = await self._request(
                "POST",
                PERSONS,
                what,
                json_body=pipedrive_person(contact, clear=False),
                expect=(200, 201),
            )
            person_id = self._data_id(response, what)
        else:
            person_id = await self._put_person(found, pipedrive_person(contact, clear=False))
        if self.config.create_lead:
            await self._ensure_lead(contact, person_id)
        return person_id

    async def _put_person(self, person_id: str, body: dict[str, Any]) -> str:
        what = "update person"
        response = await self._request(
            "PUT", f"{PERSONS}/{quote(person_id, safe='')}", what, json_body=body
        )
        return self._data_id(response, what)

    async def _find_person(self, contact: CrmContact) -> str | None:
        for field, term in (("email", contact.email), ("phone", contact.phone)):
            if not term:
                continue
            what = f"search person by {field}"
            response = await self._request(
                "GET",
                f"{PERSONS}/search",
                what,
                params={"term": term, "fields": field, "exact_match": "true", "limit": 2},
            )
            data = self._data(response, what)
            items = data.get("items") if isinstance(data, dict) else None
            for entry in items if isinstance(items, list) else []:
                item = entry.get("item") if isinstance(entry, dict) else None
                person_id = item.get("id") if isinstance(item, dict) else None
                if isinstance(person_id, int | str) and str(person_id):
                    return str(person_id)
        return None

    async def _ensure_lead(self, contact: CrmContact, person_id: str) -> None:
        origin = f"{ORIGIN_PREFIX}{contact.lead_id}"
        if any(lead.get("origin_id") == origin for lead in await self._leads_of(person_id)):
            return
        name = contact.full_name or contact.email or contact.phone or "Lead"
        title = f"{name} - {contact.company}" if contact.company else name
        what = "create lead"
        response = await self._request(
            "POST",
            LEADS,
            what,
            json_body={"title": title, "person_id": _numeric(person_id), "origin_id": origin},
            expect=(200, 201),
        )
        self._data_id(response, what)

    async def _leads_of(self, person_id: str) -> list[dict[str, Any]]:
        what = "list leads of person"
        leads: list[dict[str, Any]] = []
        start = 0
        for _ in range(_MAX_LEAD_PAGES):
            response = await self._request(
                "GET",
                LEADS,
                what,
                params={"person_id": person_id, "start": start, "limit": _PAGE},
                expect=(200, 404),
            )
            if response.status_code == 404:
                return leads
            data = self._data(response, what)
            leads.extend(item for item in data or [] if isinstance(item, dict))
            pagination = (json_or_none(response).get("additional_data") or {}).get("pagination")
            if not isinstance(pagination, dict) or not pagination.get("more_items_in_collection"):
                break
            start = int(pagination.get("next_start", start + _PAGE))
        return leads

    # -- delete ------------------------------------------------------------------------
    async def delete(self, contact: CrmContact | None, record_id: str) -> None:
        for lead in await self._leads_of(record_id):
            lead_id = lead.get("id")
            if str(lead.get("origin_id") or "").startswith(ORIGIN_PREFIX) and lead_id:
                await self._request(
                    "DELETE",
                    f"{LEADS}/{quote(str(lead_id), safe='')}",
                    "delete lead",
                    expect=(200, 404, 410),
                )
        response = await self._request(
            "DELETE",
            f"{PERSONS}/{quote(record_id, safe='')}",
            "delete person",
            expect=(200, 404, 410),
        )
        if response.status_code != 200:
            self._log.info("crm record already gone", op="delete person")

    # -- responses ---------------------------------------------------------------------
    def _data(self, response: httpx.Response, what: str) -> Any:
        """``data`` of a ``{"success": true, "data": ...}`` answer."""
        body = json_or_none(response)
        if not isinstance(body, dict) or body.get("success") is not True:
            raise self._unexpected(what, response)
        return body.get("data")

    def _data_id(self, response: httpx.Response, what: str) -> str:
        data = self._data(response, what)
        record_id = data.get("id") if isinstance(data, dict) else None
        if isinstance(record_id, int | str) and str(record_id):
            return str(record_id)
        raise self._unexpected(what, response)

    # -- auth, errors, rate limits -----------------------------------------------------
    def _auth(self) -> tuple[dict[str, str], dict[str, str]]:
        token = self._secret_value()
        match self.config.pipedrive_auth:
            case "api_token":
                return {}, {"api_token": token}
            case "x-api-token":
                return {"x-api-token": token}, {}
            case "bearer":
                return {"Authorization": f"Bearer {token}"}, {}

    def _error_text(self, response: httpx.Response) -> str:
        body = json_or_none(response)
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return str(body["error"])
        return super()._error_text(response)

    def _classify(self, response: httpx.Response) -> tuple[bool, float | None]:
        transient, retry_after = super()._classify(response)
        if response.status_code == 429 and retry_after is None:
            retry_after = parse_retry_after(response.headers.get("x-ratelimit-reset"))
        return transient, retry_after

    def _observe(self, response: httpx.Response) -> None:
        reset = parse_retry_after(response.headers.get("x-ratelimit-reset"))
        remaining = response.headers.get("x-ratelimit-remaining", "").strip()
        wait: float | None = None
        if response.status_code == 429:
            wait = parse_retry_after(response.headers.get("Retry-After")) or reset
        elif remaining.isdigit() and int(remaining) == 0:
            wait = reset
        if wait:
            self._not_before = max(self._not_before, time.monotonic() + wait)

    async def _before_send(self, what: str) -> None:
        wait = self._not_before - time.monotonic()
        if wait <= 0:
            return
        if wait > self.config.timeout_s:
            raise self._failure(
                what,
                "rate limit window not reset yet",
                status=None,
                transient=True,
                retry_after=wait,
            )
        self._log.info("pipedrive rate limit reached: waiting", op=what, seconds=round(wait, 2))
        await asyncio.sleep(wait)
