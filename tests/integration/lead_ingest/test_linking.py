"""The keyed blind index that links leads to one subject per person (R5), on the real store.

Concurrent requests share their store work: however many arrive together, one ``find`` with
``$in`` and one ``bulk_write``. Counted with a command listener, never timed. Two linkers on one
collection stand for two lead-ingest replicas: when both create the same new person at once,
the one that loses the race repairs its batch, so every request about one person ends with one
subject.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.collection import AsyncCollection

from services.common.store import CommandCounter
from services.lead_ingest.linking import BlindIndex, Kind, SubjectLinker

pytestmark = pytest.mark.timeout(120)

TENANT = "acme"


class Store:
    """A scratch collection, and the commands sent to it."""

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self.collection = collection
        self.commands: Counter[str] = Counter()

    def linker(self, key: bytes = b"k" * 32) -> SubjectLinker:
        return SubjectLinker(self.collection, BlindIndex(key))


@pytest.fixture
async def store(mongo_url: str) -> AsyncIterator[Store]:
    counted: Counter[str] = Counter()
    listener: monitoring.CommandListener = CommandCounter(
        lambda command, collection: counted.update([command])
    )
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_url, tz_aware=True, timeoutMS=30_000, event_listeners=[listener]
    )
    name = f"it_link_{secrets.token_hex(5)}"
    try:
        store = Store(client[name]["subject_index"])
        store.commands = counted
        yield store
    finally:
        await client.drop_database(name)
        await client.close()


def person(n: int) -> dict[Kind, str]:
    return {"email": f"p{n}@example.org", "phone": f"+3934700{n:05d}"}


async def test_one_request_creates_a_subject_and_a_second_finds_it(store: Store) -> None:
    linker = store.linker()
    assert await linker.find(TENANT, person(1)) is None
    first = await linker.link(TENANT, person(1))
    assert first.matched == ()
    assert first.created, "a new subject: the API creates its first key without looking"
    again = await linker.link(TENANT, {"email": "p1@example.org"})
    assert (again.subject_id, again.matched) == (first.subject_id, ("email",))
    assert not again.created
    by_phone = await linker.find(TENANT, {"phone": "+393470000001"})
    assert by_phone is not None
    assert by_phone.matched == ("phone",)
    assert by_phone.subject_id == first.subject_id


async def test_email_wins_and_an_identifier_of_another_person_keeps_pointing_there(
    store: Store,
) -> None:
    linker = store.linker()
    anna = await linker.link(TENANT, {"email": "anna@example.org"})
    bruno = await linker.link(TENANT, {"phone": "+393471111111"})
    both = await linker.link(TENANT, {"email": "anna@example.org", "phone": "+393471111111"})
    assert both.subject_id == anna.subject_id
    assert both.matched == ("email", "phone")
    still = await linker.find(TENANT, {"phone": "+393471111111"})
    assert still is not None
    assert still.subject_id == bruno.subject_id, "no merge by a form"


async def test_tenants_never_share_subjects(store: Store) -> None:
    linker = store.linker()
    acme = await linker.link("acme", person(2))
    other = await linker.link("other", person(2))
    assert acme.subject_id != other.subject_id
    assert other.matched == ()


async def test_two_hundred_concurrent_links_take_two_round_trips(store: Store) -> None:
    """Before batching: four per request (two finds, two find-and-modify), 800 here."""
    linker = store.linker()
    store.commands.clear()
    linked = await asyncio.gather(*(linker.link(TENANT, person(n)) for n in range(200)))
    assert len({item.subject_id for item in linked}) == 200
    assert store.commands == Counter({"find": 1, "update": 1})
    assert await store.collection.count_documents({}) == 400


async def test_the_same_new_person_in_one_batch_gets_one_subject(store: Store) -> None:
    linker = store.linker()
    requests: list[dict[Kind, str]] = [
        person(7),
        {"email": "p7@example.org"},
        {"phone": "+393470000007"},
    ] * 5
    linked = await asyncio.gather(*(linker.link(TENANT, ids) for ids in requests))
    assert len({item.subject_id for item in linked}) == 1
    assert linked[0].matched == ()
    assert all(item.matched for item in linked[1:]), "later requests see the first one's link"
    assert [item.created for item in linked].count(True) == 1
    assert await store.collection.count_documents({}) == 2


async def test_a_batch_that_loses_a_race_to_another_replica_repairs_itself(
    store: Store,
) -> None:
    """Both replicas look up before either writes (a barrier holds their writes): both think
    the people are new, one of them wins every entry, the other repairs its batch."""
    barrier = asyncio.Barrier(2)

    class WritesAfterBothLookups:
        def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
            self._collection = collection
            self._first = True

        def __getattr__(self, name: str) -> Any:
            return getattr(self._collection, name)

        async def bulk_write(self, requests: Any, **options: Any) -> Any:
            if self._first:
                self._first = False
                await barrier.wait()
            return await self._collection.bulk_write(requests, **options)

    collection = cast("AsyncCollection[dict[str, Any]]", WritesAfterBothLookups(store.collection))
    one = SubjectLinker(collection, BlindIndex(b"k" * 32))
    collection_two = cast(
        "AsyncCollection[dict[str, Any]]", WritesAfterBothLookups(store.collection)
    )
    two = SubjectLinker(collection_two, BlindIndex(b"k" * 32))
    people = [person(n) for n in range(20)]
    from_one, from_two = await asyncio.gather(
        asyncio.gather(*(one.link(TENANT, ids) for ids in people)),
        asyncio.gather(*(two.link(TENANT, ids) for ids in reversed(people))),
    )
    assert one.repairs + two.repairs >= 1, "the race was not provoked"
    entries = {doc["_id"]: doc["subject_id"] async for doc in store.collection.find({})}
    assert len(entries) == 40
    for ids, a, b in zip(people, from_one, reversed(from_two), strict=True):
        assert a.subject_id == b.subject_id, f"{ids} linked to two subjects"
        assert not (a.created and b.created), f"{ids}: only the replica that won created it"
        assert {entries[one._id(TENANT, kind, value)] for kind, value in ids.items()} == {
            a.subject_id
        }, "the index points every identifier of the person at the subject both answered"


async def test_a_failing_store_fails_every_request_of_the_batch_and_the_next_batch_runs(
    store: Store,
) -> None:
    class FailsOnce:
        def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
            self._collection = collection
            self.failed = False

        def __getattr__(self, name: str) -> Any:
            return getattr(self._collection, name)

        def find(self, *args: Any, **kwargs: Any) -> Any:
            if not self.failed:
                self.failed = True
                raise ConnectionError("store down")
            return self._collection.find(*args, **kwargs)

    linker = SubjectLinker(
        cast("AsyncCollection[dict[str, Any]]", FailsOnce(store.collection)), BlindIndex(b"k" * 32)
    )
    outcomes = await asyncio.gather(
        *(linker.link(TENANT, person(n)) for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
    later = await linker.link(TENANT, person(1))
    assert later.matched == (), "nothing was written by the failed batch"
