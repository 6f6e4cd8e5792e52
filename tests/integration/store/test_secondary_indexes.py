"""Lookups by a non-unique index read the index, not the collection, and stay correct.

The services look documents up by ``{tenant_id, subject_id}``, ``{tenant_id, active}`` and the
like. mongo-java-server 1.47 accepts those indexes and ignores them, so each such lookup read
the whole collection: 5 s at 100,000 leads, longer than the services' store deadline. The local
store's launcher keeps real secondary indexes (deploy/local/mongo/SecondaryIndex.java).

Whether a query used an index is asked of the store itself: the local store counts the filters
it answered by reading a whole collection (``{leadtrailStats: 1}``); MongoDB says so in
``explain`` (``COLLSCAN``). Either way the answer is a count, not a timing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

pytestmark = pytest.mark.integration

Doc = dict[str, Any]
BASE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


async def scanned(collection: AsyncCollection[Doc], query: Doc) -> bool:
    """Whether the store answers ``query`` on ``collection`` by reading every document."""
    db = collection.database
    try:
        before = await db.command("leadtrailStats")
    except OperationFailure:  # not the local store: MongoDB tells through explain
        plan = await db.command({"explain": {"find": collection.name, "filter": query}})
        return "COLLSCAN" in str(plan["queryPlanner"]["winningPlan"])
    await collection.find(query).to_list()
    after = await db.command("leadtrailStats")
    name = collection.name
    return bool(after["scans"].get(name, 0) - before["scans"].get(name, 0))


async def ids(collection: AsyncCollection[Doc], query: Doc) -> set[str]:
    return {document["_id"] async for document in collection.find(query)}


@pytest.fixture
async def leads(db: AsyncDatabase[Doc]) -> AsyncCollection[Doc]:
    collection = db["leads"]
    await collection.insert_many(
        [
            {
                "_id": f"l{i}",
                "tenant_id": f"t{i % 3}",
                "subject_id": f"s{i % 10}",
                "n": i,
                "tags": ["all", f"p{i % 2}"],
                "due": BASE + dt.timedelta(days=i % 5),
            }
            for i in range(300)
        ]
    )
    # Created after the documents: an index built over existing data, as after an upgrade.
    await collection.create_index([("tenant_id", ASCENDING), ("subject_id", ASCENDING)])
    await collection.create_index([("tags", ASCENDING)])
    await collection.create_index([("due", ASCENDING)])
    return collection


def expected(predicate: Any) -> set[str]:
    return {f"l{i}" for i in range(300) if predicate(i)}


async def test_an_equality_filter_on_every_field_of_an_index_reads_the_index(
    leads: AsyncCollection[Doc],
) -> None:
    by_subject = {"tenant_id": "t1", "subject_id": "s4"}

    assert await ids(leads, by_subject) == expected(lambda i: i % 3 == 1 and i % 10 == 4)
    assert not await scanned(leads, by_subject)
    assert not await scanned(leads, {"due": BASE + dt.timedelta(days=2)})
    assert await scanned(leads, {"subject_id": "s4"})  # half an index: a scan, and it says so


async def test_extra_conditions_and_in_lists_filter_what_the_index_found(
    leads: AsyncCollection[Doc],
) -> None:
    query = {"tenant_id": {"$in": ["t1", "t2"]}, "subject_id": "s4", "n": {"$gte": 150}}

    assert await ids(leads, query) == expected(lambda i: i % 3 != 0 and i % 10 == 4 and i >= 150)
    assert not await scanned(leads, query)
    first = leads.find({"tenant_id": "t0", "subject_id": "s0"}).sort("n", -1).limit(2)
    assert [d["_id"] async for d in first] == ["l270", "l240"]


async def test_an_array_field_is_indexed_per_element(leads: AsyncCollection[Doc]) -> None:
    assert await ids(leads, {"tags": "p1"}) == expected(lambda i: i % 2 == 1)
    assert len(await ids(leads, {"tags": "all"})) == 300
    assert not await scanned(leads, {"tags": "p1"})


async def test_updates_move_and_deletes_remove_index_entries(leads: AsyncCollection[Doc]) -> None:
    await leads.update_many({"tenant_id": "t1", "subject_id": "s4"}, {"$set": {"subject_id": "x"}})
    await leads.bulk_write(
        [
            UpdateOne({"_id": "l0"}, {"$set": {"tags": ["moved"]}}),
            UpdateOne({"_id": "l1"}, {"$inc": {"n": 1}}),
        ]
    )

    assert await ids(leads, {"tenant_id": "t1", "subject_id": "s4"}) == set()
    assert await ids(leads, {"tenant_id": "t1", "subject_id": "x"}) == expected(
        lambda i: i % 30 == 4
    )
    assert await ids(leads, {"tags": "moved"}) == {"l0"}
    assert "l0" not in await ids(leads, {"tags": "all"})

    await leads.delete_many({"tenant_id": "t1", "subject_id": "x"})
    await leads.insert_one({"_id": "new", "tenant_id": "t1", "subject_id": "x", "tags": []})

    assert await ids(leads, {"tenant_id": "t1", "subject_id": "x"}) == {"new"}
    assert await leads.count_documents({}) == 300 - 10 + 1


async def test_equal_numbers_of_different_types_match_as_in_mongodb(db: AsyncDatabase[Doc]) -> None:
    counters = db["counters"]
    await counters.create_index([("value", ASCENDING)])
    await counters.insert_many([{"_id": "int", "value": 3}, {"_id": "float", "value": 3.0}])

    assert await ids(counters, {"value": 3}) == {"int", "float"}
    assert await ids(counters, {"value": "3"}) == set()


@pytest.fixture
async def schedules(db: AsyncDatabase[Doc]) -> AsyncCollection[Doc]:
    collection = db["schedules"]
    await collection.create_index([("state", ASCENDING), ("due", ASCENDING)])
    await collection.insert_many(
        [
            {
                "_id": f"d{i}",
                "state": "pending" if i % 4 else "done",
                "due": BASE + dt.timedelta(hours=i) if i % 10 else None,
            }
            for i in range(200)
        ]
    )
    return collection


def hours(predicate: Any) -> set[str]:
    return {f"d{i}" for i in range(200) if i % 4 and i % 10 and predicate(i)}


async def test_equal_values_and_a_date_range_on_the_last_field_read_the_index(
    schedules: AsyncCollection[Doc],
) -> None:
    due = {"state": "pending", "due": {"$lte": BASE + dt.timedelta(hours=50)}}

    assert await ids(schedules, due) == hours(lambda i: i <= 50)
    assert not await scanned(schedules, due)
    earliest = schedules.find({"state": "pending", "due": {"$gt": BASE}}).sort("due").limit(3)
    assert [d["_id"] async for d in earliest] == ["d1", "d2", "d3"]
    latest = schedules.find({"state": "pending", "due": {"$gt": BASE}}).sort("due", -1).limit(2)
    assert [d["_id"] async for d in latest] == ["d199", "d198"]
    either = {"state": {"$in": ["pending", "done"]}, "due": {"$lte": BASE + dt.timedelta(hours=4)}}
    assert [d["_id"] async for d in schedules.find(either).sort("due").limit(4)] == [
        "d1",
        "d2",
        "d3",
        "d4",
    ]


@pytest.mark.parametrize(
    ("bounds", "predicate"),
    [
        ({"$lt": 50}, lambda i: i < 50),
        ({"$gte": 150}, lambda i: i >= 150),
        ({"$gt": 150}, lambda i: i > 150),
        ({"$gt": 20, "$lte": 60}, lambda i: 20 < i <= 60),
        ({"$gte": 20, "$gt": 20, "$lt": 61, "$lte": 60}, lambda i: 20 < i <= 60),
        ({"$gte": 1000}, lambda i: False),
    ],
)
async def test_date_range_bounds_match_mongodb(
    schedules: AsyncCollection[Doc], bounds: dict[str, int], predicate: Any
) -> None:
    dated = {op: BASE + dt.timedelta(hours=h) for op, h in bounds.items()}

    assert await ids(schedules, {"state": "pending", "due": dated}) == hours(predicate)


async def test_a_moved_date_leaves_the_range_it_was_in(schedules: AsyncCollection[Doc]) -> None:
    await schedules.update_one({"_id": "d1"}, {"$set": {"due": BASE + dt.timedelta(days=30)}})
    await schedules.update_one({"_id": "d2"}, {"$set": {"state": "done"}})

    early = await ids(
        schedules, {"state": "pending", "due": {"$lte": BASE + dt.timedelta(hours=3)}}
    )

    assert early == {"d3"}
