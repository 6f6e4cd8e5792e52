"""``apply_once`` and ``update_if`` on the real document store: each event changes a document
once, a stale read changes nothing, and a lead is qualified once (each one conditional write)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from services.common.store import (
    APPLIED_FIELD,
    APPLIED_WINDOW,
    Document,
    apply_once,
    update_if,
)
from services.lead_ingest.projection import LeadProjection
from tests.helpers import scratch_collection

pytestmark = pytest.mark.integration


@pytest.fixture
async def collection(mongo_url: str) -> AsyncIterator[AsyncCollection[Document]]:
    async with scratch_collection(mongo_url, "it_apply", "projection") as scratch:
        yield scratch


async def test_each_event_applies_once_and_the_window_stays_bounded(
    collection: AsyncCollection[Document],
) -> None:
    assert await apply_once(collection, "doc", "e-1", {"$inc": {"n": 1}})
    assert not await apply_once(collection, "doc", "e-1", {"$inc": {"n": 1}}), "a redelivery"
    assert await apply_once(collection, "doc", "e-2", {"$inc": {"n": 1}})
    events = [f"e-{n}" for n in range(3, APPLIED_WINDOW + 100)]
    for event_id in events:
        await apply_once(collection, "doc", event_id, {"$inc": {"n": 1}})
    for event_id in events[-50:]:
        assert not await apply_once(collection, "doc", event_id, {"$inc": {"n": 1}})
    document = await collection.find_one({"_id": "doc"})
    assert document is not None
    assert document["n"] == 2 + len(events)
    assert len(document[APPLIED_FIELD]) == APPLIED_WINDOW
    assert document[APPLIED_FIELD][-1] == events[-1]


async def test_update_if_writes_only_a_document_unchanged_since_it_was_read(
    collection: AsyncCollection[Document],
) -> None:
    due = datetime(2026, 11, 2, 9, 30, 0, 123000, tzinfo=UTC)
    await collection.insert_one({"_id": "entry", "state": "pending", "next_attempt_at": due})
    seen = await collection.find_one({"_id": "entry"})
    assert seen is not None
    await collection.update_one(
        {"_id": "entry"}, {"$set": {"next_attempt_at": due + timedelta(seconds=1)}}
    )  # re-enqueued meanwhile
    stale = {"next_attempt_at": seen["next_attempt_at"]}
    assert not await update_if(collection, "entry", stale, {"$set": {"state": "done"}})
    assert not await update_if(collection, "missing", stale, {"$set": {"state": "done"}})
    fresh = await collection.find_one({"_id": "entry"})
    assert fresh is not None
    current = {"next_attempt_at": fresh["next_attempt_at"], "state": "pending"}
    assert await update_if(collection, "entry", current, {"$set": {"state": "done"}})
    assert (await collection.find_one({"_id": "entry"}) or {})["state"] == "done"


async def test_a_lead_is_reserved_for_the_first_qualification_only(
    collection: AsyncCollection[Document],
) -> None:
    """``update_if`` with an expected None also matches a field that is absent:
    what lead-ingest's one-``lead.qualified``-per-lead reservation relies on."""

    projection = LeadProjection(collection.database)
    await projection.leads.insert_one({"_id": "lead_1", "tenant_id": "acme"})
    assert await projection.claim_qualification("lead_1", "q-1")
    assert await projection.claim_qualification("lead_1", "q-1"), "a redelivery of that cause"
    assert not await projection.claim_qualification("lead_1", "q-2"), "another cause"
    assert not await projection.claim_qualification("lead_2", "q-1"), "no such lead"
    document = await projection.leads.find_one({"_id": "lead_1"})
    assert document is not None
    assert document["qualification_event_id"] == "q-1"
