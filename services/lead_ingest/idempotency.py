"""``Idempotency-Key``: a retried request returns the first response, and never a second event.

A request first claims its key with a *pending* record holding the ids it will use (lead id,
event id). Only after Kafka acknowledged the event is the record completed with the response.

* same key, same body, completed  -> the stored response, no new event;
* same key, same body, pending    -> 409 while the first attempt may still be running; after
  ``takeover_s`` (its process died between Kafka's ack and the completion) a retry takes it over
  and publishes again *with the same event id*, which every consumer deduplicates;
* same key, different body        -> 422: a key names one request;
* Kafka failed                    -> the record is marked failed; a retry takes it over at once
  and publishes with the same ids (a late delivery of the failed attempt is deduplicated).

A client may put anything in the key, an e-mail address too, so the key is never stored: the
record's ``_id`` is ``<tenant>:<HMAC-SHA256 of the key>`` under a secret key (lead-ingest's
blind-index key), which no one without that key can turn back into a guessed e-mail.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from services.common.store import Document

__all__ = ["Claim", "IdempotencyStore", "request_fingerprint"]


def request_fingerprint(body: Any) -> str:
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


@dataclass(frozen=True)
class Claim:
    outcome: Literal["new", "takeover", "replay", "in_progress", "mismatch"]
    ids: dict[str, str]
    response: dict[str, Any] | None = None
    status: int | None = None


class IdempotencyStore:
    def __init__(
        self, collection: AsyncCollection[Document], takeover_s: float, secret: bytes
    ) -> None:
        self._collection = collection
        self._takeover = timedelta(seconds=takeover_s)
        self._secret = secret

    def _id(self, tenant_id: str, key: str) -> str:
        digest = hmac.new(self._secret, f"{tenant_id}\0{key}".encode(), hashlib.sha256)
        return f"{tenant_id}:{digest.hexdigest()}"

    async def claim(
        self, tenant_id: str, key: str, fingerprint: str, ids: dict[str, str], now: datetime
    ) -> Claim:
        document_id = self._id(tenant_id, key)
        try:
            await self._collection.insert_one(
                {
                    "_id": document_id,
                    "tenant_id": tenant_id,
                    "fingerprint": fingerprint,
                    "state": "pending",
                    "ids": ids,
                    "created_at": now,
                    "claimed_at": now,
                }
            )
            return Claim("new", ids)
        except DuplicateKeyError:
            pass
        existing = await self._collection.find_one({"_id": document_id})
        if existing is None:  # completed-and-removed between the two calls: try once more
            return await self.claim(tenant_id, key, fingerprint, ids, now)
        if existing["fingerprint"] != fingerprint:
            return Claim("mismatch", dict(existing["ids"]))
        if existing["state"] == "done":
            return Claim(
                "replay", dict(existing["ids"]), existing["response"], int(existing["status"])
            )
        taken = await self._collection.find_one_and_update(
            {
                "_id": document_id,
                "$or": [
                    {"state": "failed"},
                    {"state": "pending", "claimed_at": {"$lte": now - self._takeover}},
                ],
            },
            {"$set": {"state": "pending", "claimed_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if taken is None:
            return Claim("in_progress", dict(existing["ids"]))
        return Claim("takeover", dict(taken["ids"]))

    async def complete(
        self, tenant_id: str, key: str, response: dict[str, Any], status: int, now: datetime
    ) -> None:
        await self._collection.update_one(
            {"_id": self._id(tenant_id, key)},
            {"$set": {"state": "done", "response": response, "status": status, "done_at": now}},
        )

    async def release(self, tenant_id: str, key: str) -> None:
        """Mark a claim whose request failed, so a retry may take it over at once.

        The claim keeps its ids: if the failed publish still reached Kafka (a timeout after
        the broker had the record), the retry publishes the same event id, which consumers
        deduplicate, instead of a second lead.
        """
        await self._collection.update_one(
            {"_id": self._id(tenant_id, key), "state": "pending"}, {"$set": {"state": "failed"}}
        )
