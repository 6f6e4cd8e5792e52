"""Concurrent reads by ``_id`` share one ``find $in`` (services/common/coalesce.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.common.coalesce import ByIdReader


class Collection:
    """Documents by id; every ``find`` is recorded, and may be held until released."""

    def __init__(self, *ids: str) -> None:
        self.documents = {i: {"_id": i, "n": [1]} for i in ids}
        self.finds: list[list[str]] = []
        self.hold: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.fail_next: Exception | None = None

    def find(self, filter: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        keys = list(filter["_id"]["$in"])
        self.finds.append(keys)
        return self._answer(keys)

    async def _answer(self, keys: list[str]) -> AsyncIterator[dict[str, Any]]:
        self.started.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        for key in keys:
            if key in self.documents:
                yield self.documents[key]


async def test_requests_made_together_share_one_read() -> None:
    collection = Collection("a", "b", "c")
    reader = ByIdReader(collection)
    found = await asyncio.gather(*(reader.get(key) for key in ["a", "b", "x", "c", "a"]))
    assert collection.finds == [["a", "b", "x", "c"]]
    assert [d and d["_id"] for d in found] == ["a", "b", None, "c", "a"]
    assert found[0] is not found[4], "two callers of one id never share a dict"
    assert found[0] == found[4]


async def test_a_request_made_during_a_read_waits_for_the_next_one() -> None:
    """So a caller always reads what was written before it asked."""
    collection = Collection("a", "b")
    collection.hold = asyncio.Event()
    reader = ByIdReader(collection)
    first = asyncio.create_task(reader.get("a"))
    await collection.started.wait()
    collection.documents["b"] = {"_id": "b", "n": [2]}  # written before the next request
    later = [asyncio.create_task(reader.get(key)) for key in ["b", "a"]]
    await asyncio.sleep(0)
    collection.hold.set()
    assert (await first) == {"_id": "a", "n": [1]}
    assert [await task for task in later] == [{"_id": "b", "n": [2]}, {"_id": "a", "n": [1]}]
    assert collection.finds == [["a"], ["b", "a"]]


async def test_a_store_error_reaches_every_caller_of_that_read_and_the_next_read_works() -> None:
    collection = Collection("a")
    collection.fail_next = TimeoutError("store deadline")
    reader = ByIdReader(collection)
    outcomes = await asyncio.gather(reader.get("a"), reader.get("b"), return_exceptions=True)
    assert all(isinstance(outcome, TimeoutError) for outcome in outcomes)
    assert await reader.get("a") == {"_id": "a", "n": [1]}


async def test_a_caller_that_gives_up_leaves_the_read_to_the_others() -> None:
    collection = Collection("a")
    collection.hold = asyncio.Event()
    reader = ByIdReader(collection)
    impatient = asyncio.create_task(reader.get("a"))
    patient = asyncio.create_task(reader.get("a"))
    await collection.started.wait()
    impatient.cancel()
    collection.hold.set()
    assert await patient == {"_id": "a", "n": [1]}
    with pytest.raises(asyncio.CancelledError):
        await impatient
