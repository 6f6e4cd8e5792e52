"""HubSpot CRM v3 contacts, authenticated with a private-app (or OAuth) bearer token.

* No record id yet, email known: ``POST /crm/v3/objects/contacts/batch/upsert`` with
  ``idProperty: "email"`` (supported for contacts since September 2024). HubSpot creates the
  contact or updates the one with that email, in one call, so retries never make a second one.
* No record id, no email: ``POST /crm/v3/objects/contacts`` (nothing to deduplicate on).
* Record id known: ``PATCH /crm/v3/objects/contacts/{id}``; fields that are None are cleared
  (``""``), since crm-sync sends the whole current lead.
* Erasure: ``DELETE /crm/v3/objects/contacts/{id}`` archives (restorable for 90 days);
  with ``gdpr_delete`` set, ``POST /crm/v3/objects/contacts/gdpr-delete`` removes it for good.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from services.crm_sync.adapters._http import HttpAdapter, json_or_none
from services.crm_sync.adapters.base import CrmContact, parse_retry_after

__all__ = ["HubSpotAdapter", "hubspot_properties"]

CONTACTS = "/crm/v3/objects/contacts"


def hubspot_properties(contact: CrmContact, *, clear: bool) -> dict[str, str]:
    """HubSpot's contact properties for ``contact``; then the tenant's mapped ``extra``.

    ``clear``: send None fields as ``""``, which HubSpot documents as clearing the value.
    """
    standard = {
        "email": contact.email,
        "firstname": contact.first_name,
        "lastname": contact.last_name,
        "phone": contact.phone,
        "company": contact.company,
        "jobtitle": contact.job_title,
    }
    properties = {
        name: value if value is not None else ""
        for name, value in standard.items()
        if value is not None or clear
    }
    properties.update(contact.extra)
    return properties


class HubSpotAdapter(HttpAdapter):
    kind = "hubspot"
    vendor = "HubSpot"

    async def upsert(self, contact: CrmContact, record_id: str | None) -> str:
        if record_id is not None:
            what = "update contact"
            response = await self._request(
                "PATCH",
                f"{CONTACTS}/{quote(record_id, safe='')}",
                what,
                json_body={"properties": hubspot_properties(contact, clear=True)},
            )
            # After a merge HubSpot answers with the surviving contact: keep its id.
            return self._record_id(response, what)
        if contact.email:
            return await self._upsert_by_email(contact, contact.email)
        what = "create contact"
        response = await self._request(
            "POST",
            CONTACTS,
            what,
            json_body={"properties": hubspot_properties(contact, clear=False)},
            expect=(200, 201),
        )
        return self._record_id(response, what)

    async def _upsert_by_email(self, contact: CrmContact, email: str) -> str:
        what = "upsert contact by email"
        properties = hubspot_properties(contact, clear=False)
        properties.pop("email", None)  # it is the id of the input
        response = await self._request(
            "POST",
            f"{CONTACTS}/batch/upsert",
            what,
            json_body={
                "inputs": [
                    {"idProperty": "email", "id": email.strip().lower(), "properties": properties}
                ]
            },
            expect=(200, 201, 207),
        )
        body = json_or_none(response)
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors:
            first = errors[0] if isinstance(errors[0], dict) else {}
            raise self._failure(
                what,
                f"{first.get('category', 'error')}: {first.get('message', 'rejected')}",
                status=response.status_code,
                transient=False,
                body=response.text,
            )
        results = body.get("results") if isinstance(body, dict) else None
        if isinstance(results, list) and results and isinstance(results[0], dict):
            record_id = results[0].get("id")
            if isinstance(record_id, str | int) and str(record_id):
                return str(record_id)
        raise self._unexpected(what, response)

    async def delete(self, contact: CrmContact | None, record_id: str) -> None:
        if self.config.gdpr_delete:
            response = await self._request(
                "POST",
                f"{CONTACTS}/gdpr-delete",
                "GDPR-delete contact",
                json_body={"objectId": record_id},
                expect=(200, 204, 404),
            )
        else:
            response = await self._request(
                "DELETE",
                f"{CONTACTS}/{quote(record_id, safe='')}",
                "archive contact",
                expect=(200, 204, 404),
            )
        if response.status_code == 404:
            self._log.info("crm record already gone", op="delete contact")

    def _record_id(self, response: httpx.Response, what: str) -> str:
        body = json_or_none(response)
        record_id = body.get("id") if isinstance(body, dict) else None
        if isinstance(record_id, str | int) and str(record_id):
            return str(record_id)
        raise self._unexpected(what, response)

    # -- errors ------------------------------------------------------------------------
    def _error_text(self, response: httpx.Response) -> str:
        body: Any = json_or_none(response)
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            category = body.get("category") or body.get("errorType")
            return f"{category}: {body['message']}" if category else str(body["message"])
        return super()._error_text(response)

    def _classify(self, response: httpx.Response) -> tuple[bool, float | None]:
        transient, retry_after = super()._classify(response)
        if response.status_code == 429 and retry_after is None:
            # HubSpot's 429 names the policy it hit. For the rolling (ten-)secondly windows,
            # waiting one interval is enough; for the daily limit, nobody knows here.
            body = json_or_none(response)
            policy = body.get("policyName") if isinstance(body, dict) else None
            interval = parse_retry_after(
                response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
            )
            if policy != "DAILY" and interval is not None:
                retry_after = interval / 1000
        return transient, retry_after
