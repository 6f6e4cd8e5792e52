"""``apply_once`` on the real document store: each event changes a document once, in both of
its guard modes (one conditional write on MongoDB; read then write by ``_id`` on FerretDB 1.x,
which scans for any other filter)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from services.common import store
from services.common.store import APPLIED_FIELD, APPLIED_WINDOW, Document, apply_once

pytestmark = pytest.mark.integration


@pytest.fixture
async def collection(mongo_url: str) -> AsyncIterator[AsyncCollection[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url, tz_aware=True)
    name = f"it_apply_{uuid.uuid4().hex[:10]}"
    yield client[name]["projection"]
    await client.drop_database(name)
    await client.close()


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
