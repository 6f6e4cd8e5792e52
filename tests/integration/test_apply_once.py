"""``apply_once`` and ``update_if`` on the real document store: each event changes a document
once, a stale read changes nothing, and a lead is qualified once, in both guard modes (one
conditional write on MongoDB; read then write by ``_id`` on FerretDB 1.x, which scans for any
other filter)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from services.common import store
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


async def test_the_server_flavour_is_recognised(collection: AsyncCollection[Document]) -> None:
    info = await collection.database.client.admin.command("buildInfo")
    expected = str(info.get("ferretdbVersion", "")).startswith("v1.")
    assert await store.filters_only_by_id(collection) is expected


@pytest.mark.parametrize("by_id_only", [True, False], ids=["read-then-write", "conditional"])
async def test_each_event_applies_once_and_the_window_stays_bounded(
    collection: AsyncCollection[Document], by_id_only: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def mode(_: AsyncCollection[Document]) -> bool:
        return by_id_only

    monkeypatch.setattr(store, "filters_only_by_id", mode)
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
    assert len(document[APPLIED_FIELD]) <= APPLIED_WINDOW + store.TRIM_EVERY * 8


@pytest.mark.parametrize("by_id_only", [True, False], ids=["read-then-write", "conditional"])
async def test_update_if_writes_only_a_document_unchanged_since_it_was_read(
    collection: AsyncCollection[Document], by_id_only: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def mode(_: AsyncCollection[Document]) -> bool:
        return by_id_only

    monkeypatch.setattr(store, "filters_only_by_id", mode)
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


@pytest.mark.parametrize("by_id_only", [True, False], ids=["read-then-write", "conditional"])
async def test_a_lead_is_reserved_for_the_first_qualification_only(
    collection: AsyncCollection[Document], by_id_only: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``update_if`` with an expected None also matches a field that is absent, in both modes:
    what lead-ingest's one-``lead.qualified``-per-lead reservation relies on."""

    async def mode(_: AsyncCollection[Document]) -> bool:
        return by_id_only

    monkeypatch.setattr(store, "filters_only_by_id", mode)
    projection = LeadProjection(collection.database)
    await projection.leads.insert_one({"_id": "lead_1", "tenant_id": "acme"})
    assert await projection.claim_qualification("lead_1", "q-1")
    assert await projection.claim_qualification("lead_1", "q-1"), "a redelivery of that cause"
    assert not await projection.claim_qualification("lead_1", "q-2"), "another cause"
    assert not await projection.claim_qualification("lead_2", "q-1"), "no such lead"
    document = await projection.leads.find_one({"_id": "lead_1"})
    assert document is not None
    assert document["qualification_event_id"] == "q-1"
