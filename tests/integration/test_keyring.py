"""The data keyring on the real document store: a process killed between creating a subject's
key and pointing at it must not leave the subject without a usable key (seen in the e2e kill -9
test: every later capture of that person timed out, for minutes, until the test gave up)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from services.common.crypto import KeyWrapper, MongoDataKeyring
from tests.helpers import scratch_collection

pytestmark = pytest.mark.integration

Document = dict[str, Any]


class KilledError(Exception):
    """Stands for SIGKILL: the process stops between two writes."""


class DiesBeforeThePointer:
    """The keyring's collection as a process killed right after inserting a key sees it: the
    insert lands, the pointer update never happens (the ordered write of both stops after its
    first operation; on a real store, a pointer upsert that fails does the same)."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    async def bulk_write(self, operations: list[Any], **kwargs: Any) -> Any:
        await self._collection.bulk_write(operations[:1])
        raise KilledError


@pytest.fixture
async def collection(mongo_url: str) -> AsyncIterator[AsyncCollection[Document]]:
    async with scratch_collection(mongo_url, "it_keys", "data_keys") as scratch:
        yield scratch


@pytest.fixture
def wrapper() -> KeyWrapper:
    return KeyWrapper(os.urandom(32), "kek-1")


def keyring(collection: Any, wrapper: KeyWrapper) -> MongoDataKeyring:
    return MongoDataKeyring(collection, wrapper, cache_ttl=0)


@pytest.mark.parametrize("erased_before", [False, True], ids=["first-key", "after-erasure"])
async def test_a_key_left_without_its_pointer_is_adopted(
    collection: AsyncCollection[Document], wrapper: KeyWrapper, erased_before: bool
) -> None:
    if erased_before:  # generation 1 exists and was destroyed: the orphan is generation 2
        await keyring(collection, wrapper).get_or_create("acme", "sub-1")
        assert await keyring(collection, wrapper).destroy("acme", "sub-1") == 1
    with pytest.raises(KilledError):
        await keyring(DiesBeforeThePointer(collection), wrapper).get_or_create("acme", "sub-1")
    orphan_generation = 2 if erased_before else 1
    assert await collection.find_one({"_id": f"acme/sub-1/{orphan_generation}"}) is not None

    restarted = keyring(collection, wrapper)
    key = await restarted.get_or_create("acme", "sub-1")

    assert key.key_id == f"acme/sub-1/{orphan_generation}", "the orphan is used, not skipped"
    pointer = await collection.find_one({"_id": "current:acme/sub-1"})
    assert pointer is not None
    assert pointer["generation"] == orphan_generation
    assert pointer["destroyed"] is False
    again = await keyring(collection, wrapper).get_or_create("acme", "sub-1")
    assert again.key_id == key.key_id
    assert again.material == key.material
    # An erasure reaches the adopted key like any other.
    assert await restarted.destroy("acme", "sub-1") == 1
    assert await restarted.get(key.key_id) is None


class CountsReads:
    """The keyring's collection, counting the reads sent to the store."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        if name in ("find", "find_one"):
            self.reads += 1
        return getattr(self._collection, name)


@pytest.fixture
async def counted(mongo_url: str) -> AsyncIterator[tuple[AsyncCollection[Document], Counter[str]]]:
    """A scratch keyring collection, and every command sent to it over the wire."""
    commands: Counter[str] = Counter()
    async with scratch_collection(mongo_url, "it_keys", "data_keys", commands=commands) as scratch:
        yield scratch, commands


async def test_a_new_subjects_first_key_costs_one_round_trip_and_is_the_one_used(
    counted: tuple[AsyncCollection[Document], Counter[str]], wrapper: KeyWrapper
) -> None:
    collection, commands = counted
    service = MongoDataKeyring(collection, wrapper, cache_ttl=300)
    first = await service.create_first("acme", "sub-new")
    assert commands == {"update data_keys": 1}, "key and pointer in one command, nothing read"
    assert await service.get_or_create("acme", "sub-new") == first
    assert sum(commands.values()) == 1, "then from the cache"
    elsewhere = await keyring(collection, wrapper).get_or_create("acme", "sub-new")
    assert elsewhere == first, "another process finds it through the pointer"


async def test_create_first_for_a_subject_created_elsewhere_meanwhile_uses_its_key(
    collection: AsyncCollection[Document], wrapper: KeyWrapper
) -> None:
    """Two requests for the same new person, in two processes, both think they created it."""
    theirs = await keyring(collection, wrapper).get_or_create("acme", "sub-both")
    ours = await keyring(collection, wrapper).create_first("acme", "sub-both")
    assert ours == theirs


async def test_destroying_many_subjects_costs_three_round_trips(
    counted: tuple[AsyncCollection[Document], Counter[str]], wrapper: KeyWrapper
) -> None:
    collection, commands = counted
    writer = keyring(collection, wrapper)
    for n in range(10):
        await writer.get_or_create("acme", f"sub-{n}")
    await writer.destroy("acme", "sub-0")
    await writer.get_or_create("acme", "sub-0")  # a returning subject: generation 2
    commands.clear()

    destroyed = await writer.destroy_all([("acme", f"sub-{n}") for n in range(10)])

    assert destroyed == 10, "generation 1 of sub-0 was destroyed before and keeps its date"
    assert commands == {"find data_keys": 1, "update data_keys": 2}
    remaining = collection.find({"tenant_id": "acme", "destroyed_at": None})
    assert [doc["_id"] async for doc in remaining] == []
    for n in range(10):
        pointer = await collection.find_one({"_id": f"current:acme/sub-{n}"})
        assert pointer is not None
        assert pointer["destroyed"] is True


async def test_an_erased_subjects_key_is_never_used_again(
    collection: AsyncCollection[Document], wrapper: KeyWrapper
) -> None:
    """A service caches keys for a while (LEADTRAIL_DATA_KEY_CACHE_S); erasure-propagator
    destroys them in another process. Once the service handled the erasure
    (``forget_cached``), neither a read nor a prefetch nor an encryption gets the old key."""
    service = MongoDataKeyring(collection, wrapper, cache_ttl=300)
    old = await service.get_or_create("acme", "sub-1")
    assert await service.get(old.key_id) == old
    await MongoDataKeyring(collection, wrapper, cache_ttl=0).destroy("acme", "sub-1")
    service.forget_cached("acme", "sub-1")

    await service.prefetch([old.key_id], [("acme", "sub-1")])
    assert await service.get(old.key_id) is None
    new = await service.get_or_create("acme", "sub-1")
    assert new.key_id != old.key_id
    assert new.material != old.material
    assert new.key_id.endswith("/2")


async def test_a_batch_of_keys_is_read_once_and_then_served_from_the_cache(
    collection: AsyncCollection[Document], wrapper: KeyWrapper
) -> None:
    writer = MongoDataKeyring(collection, wrapper, cache_ttl=0)
    keys = [await writer.get_or_create("acme", f"sub-{n}") for n in range(20)]
    counted = CountsReads(collection)
    reader = MongoDataKeyring(counted, wrapper, cache_ttl=300)  # type: ignore[arg-type]

    await reader.prefetch([k.key_id for k in keys], [("acme", f"sub-{n}") for n in range(20)])
    assert counted.reads == 1, "the keys and the subjects' pointers in one read"
    for n, key in enumerate(keys):
        assert await reader.get(key.key_id) == key
        assert await reader.get_or_create("acme", f"sub-{n}") == key
    assert counted.reads == 1, "then every decryption and encryption is served from the cache"
