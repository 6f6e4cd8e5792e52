"""The in-memory collections a rebuild folds into (ops.replay_memory) behave like the database
for what the projections do: apply-once guards, upserts, lookups by ``_id`` with more
conditions, dates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import mongomock
from hypothesis import given, settings
from hypothesis import strategies as st
from pymongo import DeleteOne, ReplaceOne
from pymongo.errors import BulkWriteError

from ops.replay_memory import MemoryCollections
from services.common.store import APPLIED_FIELD, DUPLICATE_KEY, apply_once


async def test_apply_once_applies_an_event_once_and_creates_the_document() -> None:
    leads = MemoryCollections()["leads"]
    assert await apply_once(leads, "lead_1", "e1", {"$set": {"score": 10}}) is True
    assert await apply_once(leads, "lead_1", "e1", {"$set": {"score": 99}}) is False
    assert await apply_once(leads, "lead_1", "e2", {"$inc": {"score": 5}}) is True
    document = await leads.find_one({"_id": "lead_1"})
    assert document == {"_id": "lead_1", "score": 15, APPLIED_FIELD: ["e1", "e2"]}


async def test_a_lookup_by_id_still_applies_the_other_conditions() -> None:
    leads = MemoryCollections()["leads"]
    await leads.insert_one({"_id": "a", "state": "scheduled"})
    assert await leads.find_one({"_id": "a", "state": "expired"}) is None
    assert await leads.find_one({"_id": "missing"}) is None
    result = await leads.update_one({"_id": "a", "state": "expired"}, {"$set": {"x": 1}})
    assert result.matched_count == 0
    result = await leads.update_one({"_id": "a", "state": "scheduled"}, {"$set": {"x": 1}})
    assert result.modified_count == 1


async def test_dates_come_back_aware_and_to_the_millisecond_as_from_bson() -> None:
    due = MemoryCollections()["retention_due"]
    at = datetime(2026, 11, 2, 9, 30, 0, 123456, tzinfo=UTC)
    await due.update_one({"_id": "d"}, {"$min": {"anchor_at": at}}, upsert=True)
    document = await due.find_one({"_id": "d"})
    assert document is not None
    assert document["anchor_at"] == at.replace(microsecond=123000)
    assert document["anchor_at"].utcoffset() is not None


async def test_queries_on_other_fields_sort_and_limit_as_pymongo() -> None:
    due = MemoryCollections()["retention_due"]
    for n in (3, 1, 2):
        await due.insert_one({"_id": f"d{n}", "tenant_id": "t", "n": n})
    await due.insert_one({"_id": "other", "tenant_id": "u", "n": 0})
    found = await due.find({"tenant_id": "t"}, sort=[("n", 1)], limit=2).to_list(None)
    assert [d["_id"] for d in found] == ["d1", "d2"]
    assert [d["_id"] async for d in due.find({"n": {"$gte": 2}})] == ["d3", "d2"]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["e1", "e2", "e3", "e4"])),
        max_size=20,
    )
)
async def test_the_id_lookup_answers_as_the_scan_would(steps: list[tuple[str, str]]) -> None:
    """The one thing added to mongomock: a filter on a plain ``_id``, looked up directly."""
    memory = MemoryCollections()
    leads = memory["leads"]
    for document_id, event_id in steps:
        await apply_once(leads, document_id, event_id, {"$inc": {"n": 1}})
    scanned = await leads.find({"_id": {"$in": ["a", "b", "c"]}}).to_list(None)
    looked_up = [await leads.find_one({"_id": key}) for key in ("a", "b", "c")]
    assert sorted(scanned, key=lambda d: d["_id"]) == [d for d in looked_up if d is not None]
    for document in scanned:
        assert document["n"] == len(set(document[APPLIED_FIELD]))


_AT = datetime(2026, 11, 2, 9, 30, 0, 123456, tzinfo=UTC)
_VERSIONED_OPS = st.lists(
    st.tuples(
        st.sampled_from(["replace", "delete"]),
        st.sampled_from(["a", "b"]),
        st.one_of(st.none(), st.integers(min_value=1, max_value=3)),  # None: "not there yet"
        st.integers(min_value=1, max_value=4),
    ),
    max_size=25,
)


@settings(max_examples=100, deadline=None)
@given(_VERSIONED_OPS)
async def test_the_pipelines_versioned_writes_match_mongomocks_general_path(
    ops: list[tuple[str, str, int | None, int]],
) -> None:
    """The batch pipeline's conditional writes take a direct path in memory: the same stored
    documents, counts and lost races (duplicate keys) as mongomock's replace/delete."""
    fast = MemoryCollections()["leads"]
    general: Any = mongomock.MongoClient(tz_aware=True)["replay"]["leads"]
    for kind, key, read_version, new_version in ops:
        expected: Any = read_version if read_version is not None else {"$exists": False}
        condition = {"_id": key, "version": expected}
        document = {"version": new_version, "at": _AT, "facts": [{"at": _AT, "n": new_version}]}
        request: Any = (
            ReplaceOne(condition, document, upsert=True)
            if kind == "replace"
            else DeleteOne(condition)
        )
        try:
            result = await fast.bulk_write([request], ordered=True)
            outcome: Any = (result.matched_count, result.upserted_count, result.deleted_count)
        except BulkWriteError as error:
            outcome = error.details["writeErrors"][0]["code"]
        try:
            if kind == "replace":
                done = general.replace_one(condition, document, upsert=True)
                wanted: Any = (done.matched_count, int(done.upserted_id is not None), 0)
            else:
                wanted = (0, 0, general.delete_one(condition).deleted_count)
        except mongomock.DuplicateKeyError:
            wanted = DUPLICATE_KEY
        assert outcome == wanted
        found = await fast.find({"_id": {"$in": ["a", "b", "missing"]}}).to_list(None)
        assert sorted(found, key=lambda d: d["_id"]) == list(general.find({}).sort("_id"))
    for document in await fast.find({"_id": {"$in": ["a", "b"]}}).to_list(None):
        at: Any = document["at"]
        facts: Any = document["facts"]
        assert at == _AT.replace(microsecond=123000)
        assert at.utcoffset() is not None
        assert facts[0]["at"] == at
