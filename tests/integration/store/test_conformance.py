"""What the services ask of their document store, run against the store the fixtures started.

Every kind of operation the services rely on is here, so that a quirk of one store (the local
mongo-java-server, MongoDB in a container, an external MongoDB) cannot hide behind code written
for another. A failure here means the services would misbehave on that store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import pytest
from pymongo import ASCENDING, DESCENDING, DeleteOne, InsertOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

pytestmark = pytest.mark.integration

Doc = dict[str, Any]


async def test_upsert_sets_on_insert_only_the_first_time(db: AsyncDatabase[Doc]) -> None:
    leads = db["leads"]
    update = {"$setOnInsert": {"created": 1}, "$set": {"seen": 1}}

    first = await leads.update_one({"_id": "l1"}, update, upsert=True)
    await leads.update_one(
        {"_id": "l1"}, {"$setOnInsert": {"created": 2}, "$set": {"seen": 2}}, upsert=True
    )

    assert first.upserted_id == "l1"
    assert await leads.find_one({"_id": "l1"}) == {"_id": "l1", "created": 1, "seen": 2}


async def test_a_conditional_update_on_id_and_version_matches_only_that_version(
    db: AsyncDatabase[Doc],
) -> None:
    leads = db["leads"]
    await leads.insert_many([{"_id": f"l{i}", "version": 1} for i in range(50)])

    won = await leads.update_one({"_id": "l7", "version": 1}, {"$set": {"version": 2}})
    lost = await leads.update_one({"_id": "l7", "version": 1}, {"$set": {"version": 3}})
    absent = await leads.update_one({"_id": "nope", "version": 1}, {"$set": {"version": 3}})

    assert (won.matched_count, lost.matched_count, absent.matched_count) == (1, 0, 0)
    assert await leads.find_one({"_id": "l7"}) == {"_id": "l7", "version": 2}
    assert await leads.count_documents({"version": 1}) == 49


async def test_a_guarded_push_applies_an_event_id_once(db: AsyncDatabase[Doc]) -> None:
    leads = db["leads"]
    for _ in range(2):
        # The second time the document exists and holds evt-1: the filter misses, so the
        # upsert tries to insert a second document with the same _id.
        with contextlib.suppress(DuplicateKeyError):
            await leads.update_one(
                {"_id": "l1", "_applied": {"$ne": "evt-1"}},
                {"$push": {"_applied": "evt-1"}, "$inc": {"count": 1}},
                upsert=True,
            )

    assert await leads.find_one({"_id": "l1"}) == {"_id": "l1", "_applied": ["evt-1"], "count": 1}


async def test_array_updates_pull_all_and_in(db: AsyncDatabase[Doc]) -> None:
    leads = db["leads"]
    await leads.insert_one({"_id": "l1", "ids": ["a", "b", "c", "d"]})

    await leads.update_one({"_id": "l1"}, {"$pullAll": {"ids": ["a", "c"]}})
    await leads.update_one({"_id": "l1"}, {"$addToSet": {"ids": "b"}})
    await leads.update_one({"_id": "l1"}, {"$unset": {"gone": ""}, "$inc": {"n": 2}})

    assert await leads.find_one({"_id": "l1"}) == {"_id": "l1", "ids": ["b", "d"], "n": 2}


async def test_find_one_and_update_returns_the_document_before_or_after(
    db: AsyncDatabase[Doc],
) -> None:
    counters = db["counters"]
    before = await counters.find_one_and_update(
        {"_id": "c"}, {"$inc": {"n": 1}}, upsert=True, return_document=ReturnDocument.BEFORE
    )
    after = await counters.find_one_and_update(
        {"_id": "c"}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
    )
    missing = await counters.find_one_and_update({"_id": "x", "n": 5}, {"$set": {"n": 6}})

    assert before is None
    assert after == {"_id": "c", "n": 2}
    assert missing is None


async def test_unique_indexes_refuse_a_second_document(db: AsyncDatabase[Doc]) -> None:
    tokens = db["tokens"]
    await tokens.create_index([("hash", ASCENDING)], unique=True)
    await tokens.insert_one({"_id": "t1", "hash": "h1"})

    with pytest.raises(DuplicateKeyError):
        await tokens.insert_one({"_id": "t1", "hash": "other"})
    with pytest.raises(DuplicateKeyError):
        await tokens.insert_one({"_id": "t2", "hash": "h1"})
    assert await tokens.find_one({"hash": "h1"}) == {"_id": "t1", "hash": "h1"}


async def test_find_by_id_in_returns_exactly_those_present(db: AsyncDatabase[Doc]) -> None:
    leads = db["leads"]
    await leads.insert_many([{"_id": f"l{i}", "n": i} for i in range(200)])

    found = await leads.find({"_id": {"$in": ["l3", "l150", "missing", "l3"]}}).to_list()
    narrowed = await leads.find({"_id": {"$in": ["l3", "l150"]}, "n": {"$gt": 100}}).to_list()

    assert sorted(d["_id"] for d in found) == ["l150", "l3"]
    assert narrowed == [{"_id": "l150", "n": 150}]


async def test_sort_and_limit_on_an_indexed_field(db: AsyncDatabase[Doc]) -> None:
    outbox = db["outbox"]
    await outbox.create_index([("due", ASCENDING)])
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    await outbox.insert_many(
        [{"_id": f"o{i}", "due": base + dt.timedelta(minutes=(i * 7) % 30)} for i in range(30)]
    )

    cursor = outbox.find({"due": {"$lte": base + dt.timedelta(minutes=10)}})
    earliest = await cursor.sort("due", ASCENDING).limit(3).to_list()
    latest = await outbox.find().sort([("due", DESCENDING), ("_id", ASCENDING)]).limit(1).to_list()

    assert [d["due"] for d in earliest] == [base + dt.timedelta(minutes=m) for m in (0, 1, 2)]
    assert latest[0]["due"] == base + dt.timedelta(minutes=29)


async def test_an_ordered_bulk_write_applies_in_order_with_upserts(
    db: AsyncDatabase[Doc],
) -> None:
    docs = db["docs"]
    await docs.insert_one({"_id": "d0", "v": 0})
    result = await docs.bulk_write(
        [
            UpdateOne({"_id": "d0"}, {"$inc": {"v": 1}}),
            UpdateOne({"_id": "d1"}, {"$set": {"v": 10}}, upsert=True),
            UpdateOne({"_id": "d1"}, {"$inc": {"v": 1}}),
            InsertOne({"_id": "d2", "v": 20}),
            DeleteOne({"_id": "d0"}),
            *(UpdateOne({"_id": f"m{i}"}, {"$set": {"v": i}}, upsert=True) for i in range(200)),
        ],
        ordered=True,
    )

    assert result.upserted_count == 201
    assert (await docs.find_one({"_id": "d1"}), await docs.find_one({"_id": "d0"})) == (
        {"_id": "d1", "v": 11},
        None,
    )
    assert await docs.count_documents({}) == 202


async def test_an_ordered_bulk_write_stops_at_the_first_error(db: AsyncDatabase[Doc]) -> None:
    docs = db["docs"]
    await docs.insert_one({"_id": "taken"})

    with pytest.raises(BulkWriteError) as raised:
        await docs.bulk_write(
            [InsertOne({"_id": "a"}), InsertOne({"_id": "taken"}), InsertOne({"_id": "b"})],
            ordered=True,
        )

    assert raised.value.details["nInserted"] == 1
    assert raised.value.details["writeErrors"][0]["index"] == 1
    assert sorted(d["_id"] for d in await docs.find().to_list()) == ["a", "taken"]


async def test_delete_many_by_an_indexed_field(db: AsyncDatabase[Doc]) -> None:
    entries = db["entries"]
    await entries.create_index([("subject_id", ASCENDING)])
    await entries.insert_many([{"_id": f"e{i}", "subject_id": f"s{i % 3}"} for i in range(30)])

    deleted = await entries.delete_many({"subject_id": "s1"})

    assert deleted.deleted_count == 10
    assert await entries.count_documents({"subject_id": "s1"}) == 0
    assert await entries.count_documents({}) == 20


async def test_large_documents_round_trip(db: AsyncDatabase[Doc]) -> None:
    blobs = db["blobs"]
    payload = "x" * (4 * 1024 * 1024)  # an access export's worth of ciphertext
    items = [{"k": i, "text": "é" * 100} for i in range(2_000)]

    await blobs.insert_one({"_id": "big", "payload": payload, "items": items})
    found = await blobs.find_one({"_id": "big"})

    assert found is not None
    assert found["payload"] == payload
    assert found["items"] == items


async def test_timestamps_come_back_timezone_aware_to_the_millisecond(
    db: AsyncDatabase[Doc],
) -> None:
    moment = dt.datetime(2026, 12, 4, 10, 30, 15, 123_000, tzinfo=dt.UTC)
    await db["times"].insert_one({"_id": "t", "at": moment})

    found = await db["times"].find_one({"_id": "t", "at": {"$lte": moment}})

    assert found == {"_id": "t", "at": moment}
