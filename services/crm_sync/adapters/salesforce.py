"""Salesforce REST API, ``Lead`` sObject, with an OAuth access token as bearer.

* Create: ``POST /services/data/{v}/sobjects/Lead/`` -> 201 ``{"id", "success", "errors"}``.
  With ``external_id_field`` configured, ``PATCH .../Lead/{field}/{lead id}`` instead: an upsert
  keyed by our lead id, so a retried create never makes a second Lead.
* Update: ``PATCH .../Lead/{id}`` -> 204; None fields are sent as null, which clears them.
* Erasure: ``DELETE .../Lead/{id}`` -> 204. The Lead goes to the Recycle Bin, which Salesforce
  empties after 15 days; 404 (already deleted) counts as done.

``LastName`` and ``Company`` are required on Lead; when missing they get ``[not provided]``,
the placeholder Salesforce's own Web-to-Lead uses. Errors come as a JSON list of
``{"message", "errorCode", "fields"}``. ``REQUEST_LIMIT_EXCEEDED`` (403, the org's API limit)
and ``UNABLE_TO_LOCK_ROW`` are transient although they are 4xx. ``Sforce-Limit-Info``
(``api-usage=used/limit``) is kept in :attr:`SalesforceAdapter.api_usage` and logged as a
warning when usage passes 90 %.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx

from services.crm_sync.adapters._http import HttpAdapter, json_or_none
from services.crm_sync.adapters.base import CrmContact, parse_retry_after

__all__ = ["PLACEHOLDER", "SalesforceAdapter", "parse_limit_info", "salesforce_fields"]

PLACEHOLDER = "[not provided]"
REQUIRED = ("LastName", "Company")
# Lead field lengths (Salesforce field reference); longer text would fail the whole call.
_LIMITS = {"FirstName": 40, "LastName": 80, "Company": 255, "Title": 128, "Phone": 40}
_TRANSIENT_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED", "UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"})
_API_USAGE = re.compile(r"(?:^|[;\s])api-usage=(\d+)/(\d+)")


def salesforce_fields(contact: CrmContact, *, clear: bool) -> dict[str, str | None]:
    """Lead fields for ``contact``, the tenant's mapped ``extra``, then required placeholders.

    ``clear``: send None fields as null (clears them on update) instead of leaving them out.
    """
    standard = {
        "FirstName": contact.first_name,
        "LastName": contact.last_name,
        "Email": contact.email,
        "Phone": contact.phone,
        "Company": contact.company,
        "Title": contact.job_title,
    }
    fields: dict[str, str | None] = {
        name: value[: _LIMITS[name]] if value is not None and name in _LIMITS else value
        for name, value in standard.items()
        if value is not None or clear
    }
    fields.update(contact.extra)
    for name in REQUIRED:
        if not fields.get(name):
            fields[name] = PLACEHOLDER
    return fields


def parse_limit_info(header: str | None) -> tuple[int, int] | None:
    """(used, limit) from ``Sforce-Limit-Info: api-usage=18/5000; ...``."""
    match = _API_USAGE.search(header or "")
    return (int(match[1]), int(match[2])) if match else None


class SalesforceAdapter(HttpAdapter):
    kind = "salesforce"
    vendor = "Salesforce"

    api_usage: tuple[int, int] | None = None

    @property
    def _leads(self) -> str:
        return f"/services/data/{self.config.api_version}/sobjects/Lead"

    async def upsert(self, contact: CrmContact, record_id: str | None) -> str:
        if record_id is not None:
            await self._request(
                "PATCH",
                f"{self._leads}/{quote(record_id, safe='')}",
                "update lead",
                json_body=salesforce_fields(contact, clear=True),
                expect=(200, 204),
            )
            return record_id
        field = self.config.external_id_field
        if field is not None:
            return await self._upsert_by_external_id(contact, field)
        what = "create lead"
        response = await self._request(
            "POST",
            f"{self._leads}/",
            what,
            json_body=salesforce_fields(contact, clear=False),
            expect=(201,),
        )
        return self._created_id(response, what)

    async def _upsert_by_external_id(self, contact: CrmContact, field: str) -> str:
        what = "upsert lead by external id"
        path = f"{self._leads}/{field}/{quote(contact.lead_id, safe='')}"
        response = await self._request(
            "PATCH",
            path,
            what,
            json_body=salesforce_fields(contact, clear=True),
            expect=(200, 201, 204),
        )
        if response.status_code != 204:
            return self._created_id(response, what)
        # Before API v46.0 an update by external id answers 204 with no body: ask for the Id.
        found = await self._request("GET", path, "read lead id", params={"fields": "Id"})
        body = json_or_none(found)
        record_id = body.get("Id") if isinstance(body, dict) else None
        if isinstance(record_id, str) and record_id:
            return record_id
        raise self._unexpected("read lead id", found)

    async def delete(self, contact: CrmContact | None, record_id: str) -> None:
        response = await self._request(
            "DELETE",
            f"{self._leads}/{quote(record_id, safe='')}",
            "delete lead",
            expect=(204, 404),
        )
        if response.status_code == 404:
            self._log.info("crm record already gone", op="delete lead")

    def _created_id(self, response: httpx.Response, what: str) -> str:
        body = json_or_none(response)
        if isinstance(body, dict) and body.get("success") is not False:
            record_id = body.get("id")
            if isinstance(record_id, str) and record_id:
                return record_id
        raise self._unexpected(what, response)

    # -- errors and limits -------------------------------------------------------------
    @staticmethod
    def _errors(response: httpx.Response) -> list[dict[str, Any]]:
        body = json_or_none(response)
        if isinstance(body, dict):
            body = [body]
        if not isinstance(body, list):
            return []
        return [item for item in body if isinstance(item, dict)]

    def _error_text(self, response: httpx.Response) -> str:
        errors = self._errors(response)
        if not errors:
            return super()._error_text(response)
        return "; ".join(
            f"{item.get('errorCode', 'ERROR')}: {item.get('message', '')}".rstrip(": ")
            for item in errors
        )

    def _classify(self, response: httpx.Response) -> tuple[bool, float | None]:
        transient, retry_after = super()._classify(response)
        codes = {str(item.get("errorCode")) for item in self._errors(response)}
        if not transient and codes & _TRANSIENT_CODES:
            return True, parse_retry_after(response.headers.get("Retry-After"))
        return transient, retry_after

    def _observe(self, response: httpx.Response) -> None:
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        if usage is None:
            return
        before = self.api_usage
        self.api_usage = usage
        used, limit = usage
        was_high = before is not None and before[1] > 0 and before[0] >= 0.9 * before[1]
        if limit > 0 and used >= 0.9 * limit and not was_high:
            self._log.warning("salesforce api usage above 90%", used=used, limit=limit)
