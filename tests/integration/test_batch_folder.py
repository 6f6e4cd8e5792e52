"""The batch pipeline's folder on the real document store and on replay's in-memory one:
one read and one write per collection per batch, each event applied once per document, and a
lost race (a second writer of the same documents) folded again instead of overwritten."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel
from pymongo import AsyncMongoClient

from contracts import EventEnvelope
from contracts.registry import DecodedEvent
from ops.replay_memory import MemoryCollections
from services.common.pipeline import VERSION_FIELD, BatchFolder, DocRef, Docs, Event
from services.common.store import APPLIED_FIELD, Collections, CommandCounter, Document

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 1, tzinfo=UTC)


class _Data(BaseModel):
    counters: list[str]


def _event(*counters: str, event_id: str | None = None) -> Event:
    envelope = EventEnvelope(
        id=event_id or str(uuid.uuid4()),
        type="test.counted",
        version=1,
        occurred_at=NOW,
        tenant_id="acme",
        subject_id="sub-1",
        correlation_id="corr-1",
        producer="test",
    )
    return DecodedEvent(envelope=envelope, data=_Data(counters=list(counters)), original_version=1)


class Counters:
    """Each event adds one to every counter it names (in ``counters`` or ``totals``) and
    remembers the order it saw events in."""

    def refs(self, event: Event, docs: Docs) -> tuple[DocRef, ...]:
        assert isinstance(event.data, _Data)
        return tuple(
            DocRef("totals" if name.startswith("t") else "counters", name)
            for name in event.data.counters
        )

    def apply(self, docs: Docs, event: Event) -> Mapping[DocRef, Document | None]:
        changed: dict[DocRef, Document | None] = {}
        for ref, document in docs.items():
            current = document or {}
            changed[ref] = {
                **current,
                "n": current.get("n", 0) + 1,
                "seen": [*current.get("seen", ()), event.envelope.id],
            }
        return changed


@pytest.fixture(params=["store", "memory"])
async def db(request: pytest.FixtureRequest, mongo_url: str) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryCollections()
        return
    commands: list[tuple[str, str]] = []
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        mongo_url,
        tz_aware=True,
        event_listeners=[CommandCounter(lambda name, target: commands.append((name, target)))],
    )
    name = f"it_fold_{uuid.uuid4().hex[:10]}"
    database = client[name]
    database.commands = commands  # type: ignore[attr-defined]
    try:
        yield database
    finally:
        await client.drop_database(name)
        await client.close()


async def _doc(db: Collections, collection: str, name: str) -> Document:
    document = await db[collection].find_one({"_id": name})
    assert document is not None
    return document


async def test_a_batch_is_one_read_and_one_write_per_collection(db: Any) -> None:
    folder = BatchFolder(db, Counters())
    events = [_event("a", "b", "t1"), _event("a"), _event("b", "t1"), _event("c")]
    commands = getattr(db, "commands", None)
    if commands is not None:
        commands.clear()
    applied = await folder.fold(events)
    sent = sorted(commands or ())
    assert [a.changed for a in applied] == [True, True, True, True]
    assert applied[1].before[DocRef("counters", "a")]["n"] == 1  # type: ignore[index]
    assert applied[1].after[DocRef("counters", "a")]["n"] == 2  # type: ignore[index]
    a = await _doc(db, "counters", "a")
    assert a["n"] == 2
    assert a["seen"] == [events[0].envelope.id, events[1].envelope.id]
    assert a[VERSION_FIELD] == 2
    assert a[APPLIED_FIELD] == a["seen"]
    assert (await _doc(db, "totals", "t1"))["n"] == 2
    if commands is not None:
        assert sent == [
            ("find", "counters"),
            ("find", "totals"),
            ("update", "counters"),  # the conditional replacements, one bulk write each
            ("update", "totals"),
        ]


async def test_a_redelivered_batch_changes_nothing(db: Any) -> None:
    folder = BatchFolder(db, Counters())
    events = [_event("a", "t1"), _event("a")]
    await folder.fold(events)
    again = await folder.fold([*events, _event("a")])
    assert [a.changed for a in again] == [False, False, True]
    a = await _doc(db, "counters", "a")
    assert a["n"] == 3
    assert a[VERSION_FIELD] == 3
    assert (await _doc(db, "totals", "t1"))["n"] == 1


async def test_a_document_half_written_before_a_crash_is_completed_once(db: Any) -> None:
    """The crash came after the write of one collection and before the other's: the
    redelivery applies the event to the other only."""
    event = _event("a", "t1")
    await BatchFolder(db, Counters()).fold([_event("t1", event_id=event.envelope.id)])
    applied = await BatchFolder(db, Counters()).fold([event])
    assert applied[0].changed
    assert (await _doc(db, "counters", "a"))["n"] == 1
    assert (await _doc(db, "totals", "t1"))["n"] == 1


class _Racing(Counters):
    """A second writer changes document ``a`` after the folder read it, the first time only."""

    def __init__(self, db: Collections, others: Sequence[Event]) -> None:
        self.db = db
        self.others = list(others)
        self.raced = 0

    async def race(self) -> None:
        if self.others:
            others, self.others = self.others, []
            self.raced += 1
            await BatchFolder(self.db, Counters()).fold(others)


class _RacingFolder(BatchFolder):
    async def load(self, refs: set[DocRef]) -> dict[DocRef, Document | None]:
        loaded = await super().load(refs)
        assert isinstance(self.model, _Racing)
        await self.model.race()  # between this folder's read and its write
        return loaded


@pytest.mark.parametrize("exists", [False, True], ids=["new document", "existing document"])
async def test_a_lost_race_is_folded_again_not_overwritten(db: Any, exists: bool) -> None:
    if exists:
        await BatchFolder(db, Counters()).fold([_event("a")])
    theirs = _event("a")
    model = _Racing(db, [theirs])
    mine = [_event("b"), _event("a")]
    applied = await _RacingFolder(db, model).fold(mine)
    assert model.raced == 1
    assert applied[1].changed, "my event on a, applied after theirs"
    a = await _doc(db, "counters", "a")
    assert a["n"] == (3 if exists else 2), "both writers' events count, once each"
    assert a["seen"][-2:] == [theirs.envelope.id, mine[1].envelope.id]
    assert (await _doc(db, "counters", "b"))["n"] == 1


class Teams:
    """``counters: [team, member]`` adds ``member`` to ``team``; ``counters: [team]`` counts
    one for every member the team lists: documents named by another document."""

    def refs(self, event: Event, docs: Docs) -> tuple[DocRef, ...]:
        assert isinstance(event.data, _Data)
        team, *joining = event.data.counters
        ref = DocRef("teams", team)
        if joining:
            return (ref, DocRef("members", joining[0]))
        if ref not in docs:
            return (ref,)
        members = (docs[ref] or {}).get("members", [])
        return (ref, *(DocRef("members", member) for member in members))

    def apply(self, docs: Docs, event: Event) -> Mapping[DocRef, Document | None]:
        assert isinstance(event.data, _Data)
        team, *joining = event.data.counters
        ref = DocRef("teams", team)
        if joining:
            current = docs[ref] or {}
            return {
                ref: {**current, "members": [*current.get("members", ()), joining[0]]},
                DocRef("members", joining[0]): {"n": 0},
            }
        return {
            member: {"n": (document or {}).get("n", 0) + 1}
            for member, document in docs.items()
            if member.collection == "members"
        }


async def test_documents_named_by_documents_are_loaded_in_one_more_read(db: Any) -> None:
    await BatchFolder(db, Teams()).fold([_event("red", "ann"), _event("red", "bob")])
    commands = getattr(db, "commands", None)
    if commands is not None:
        commands.clear()
    applied = await BatchFolder(db, Teams()).fold(
        [_event("red"), _event("red", "cy"), _event("red")]
    )
    sent = sorted(commands or ())
    assert len(applied) == 3
    assert [(await _doc(db, "members", m))["n"] for m in ("ann", "bob", "cy")] == [2, 2, 1]
    if commands is not None:
        assert sent == [
            ("find", "members"),  # cy (joining), with red
            ("find", "members"),  # ann and bob, named by red once it was loaded
            ("find", "teams"),
            ("update", "members"),
            ("update", "teams"),
        ]


class Named(Counters):
    """Names the collection first, then the counter's: ``zeta`` before ``alpha``."""

    def refs(self, event: Event, docs: Docs) -> tuple[DocRef, ...]:
        assert isinstance(event.data, _Data)
        return tuple(DocRef(name, "doc") for name in event.data.counters)


@pytest.mark.parametrize("db", ["store"], indirect=True)  # the one that sends commands
async def test_collections_are_written_in_the_order_the_batch_changed_them(db: Any) -> None:
    """A reader of two collections never sees the second change without the first."""
    commands = db.commands
    commands.clear()
    await BatchFolder(db, Named()).fold([_event("zeta", "alpha"), _event("mid")])
    assert [c for c in commands if c[0] == "update"] == [
        ("update", "zeta"),
        ("update", "alpha"),
        ("update", "mid"),
    ]
