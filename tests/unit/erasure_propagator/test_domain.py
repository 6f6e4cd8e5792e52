"""erasure-propagator's state machine as a pure fold (services/erasure_propagator/domain.py):
legal holds defer an erasure until the last one covering the subject is released (R18), the
erasure completes with every expected receipt (R25), each state names the event that decided
it (what the handlers act on, again on a redelivery), and where a batch ends changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.events import consent, erasure, retention
from services.common.pipeline import BatchFolder, DocRef, Event
from services.common.store import Document
from services.erasure_propagator.domain import (
    ERASURES,
    HOLDS,
    ErasureModel,
    Seeds,
    decided_by,
    erasure_id_for,
)
from tests.unit.folding import T0, Memory, event, without_bookkeeping

EXPECTED = ("lead-ingest", "crm-sync")


def model() -> ErasureModel:
    return ErasureModel(expected_receipts=EXPECTED, deadline_working_days=10)


def no_basis(minute: int, subject: str = "sub-1") -> Event:
    data = consent.NoBasisRemainingV1(withdrawn_purpose="marketing", cause_event_id="c")
    return event(data, minute, subject=subject)


def placed(hold_id: str, minute: int, *, scope: str = "subject") -> Event:
    data = retention.RetentionHoldPlacedV1(
        hold_id=hold_id, scope=scope, reason="litigation", placed_by="dpo"
    )
    return event(data, minute)


def released(hold_id: str, minute: int, *, scope: str = "subject") -> Event:
    data = retention.RetentionHoldReleasedV1(hold_id=hold_id, scope=scope, released_by="dpo")
    return event(data, minute)


def receipt(erasure_id: str, service: str, minute: int) -> Event:
    data = erasure.ErasureReceiptV1(erasure_id=erasure_id, service=service, actions=["done"])
    return event(data, minute)


def seeds_from(db: Memory, seeds: Seeds) -> dict[DocRef, Document | None]:
    """What ErasureStore.seeds finds, from the memory store."""
    found: dict[DocRef, Document | None] = {}
    for ref, document in db.all().items():
        tenant = document.get("tenant_id")
        if (ref.collection == HOLDS and tenant in seeds.holds_of and document["active"]) or (
            ref.collection == ERASURES
            and tenant in seeds.deferred_of
            and document["state"] == "deferred"
        ):
            found[ref] = document
    return found


async def fold_batches(events: Sequence[Event], batch: int) -> Memory:
    db = Memory()
    erasures = model()
    folder = BatchFolder(db, erasures)
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        await folder.fold(chunk, seeded=seeds_from(db, erasures.seeds_needed(chunk)))
    return db


def the_erasure(db: Memory, cause: Event) -> Document:
    document = db.all()[DocRef(ERASURES, erasure_id_for(cause.envelope.id))]
    assert document is not None
    return document


async def test_without_a_hold_an_erasure_is_requested_and_completes_with_every_receipt() -> None:
    start = no_basis(0)
    erasure_id = erasure_id_for(start.envelope.id)
    first = receipt(erasure_id, "crm-sync", 5)
    events = [
        start,
        first,
        receipt(erasure_id, "crm-sync", 6),
        receipt(erasure_id, "lead-ingest", 9),
    ]
    db = await fold_batches(events[:2], 1)
    document = the_erasure(db, start)
    assert document["state"] == "requested"
    assert decided_by(document, start.envelope.id, "requested")
    assert document["requested_at"] == T0
    assert document["trigger"]["kind"] == "no_basis_remaining"

    db = await fold_batches(events, 2)
    document = the_erasure(db, start)
    assert document["state"] == "completed"
    assert decided_by(document, events[-1].envelope.id, "completed")
    assert document["completed_at"] == events[-1].envelope.occurred_at
    assert document["receipts"]["crm-sync"]["event_id"] == first.envelope.id, "the first stays"


async def test_a_hold_defers_the_erasure_until_its_release_requests_it() -> None:
    start = no_basis(1)
    db = await fold_batches([placed("h1", 0), start, released("h1", 2)], 1)
    document = the_erasure(db, start)
    assert document["state"] == "requested"
    assert document["hold_ids"] == ["h1"]
    assert document["requested_at"] == T0.replace(minute=2)

    held = await fold_batches([placed("h1", 0), start], 2)
    assert the_erasure(held, start)["state"] == "deferred"
    assert decided_by(the_erasure(held, start), start.envelope.id, "deferred")


async def test_an_erasure_waits_for_the_last_hold_that_covers_its_subject() -> None:
    start = no_basis(2)
    events = [placed("h1", 0), placed("t1", 1, scope="tenant"), start, released("h1", 3)]
    db = await fold_batches(events, 1)
    assert the_erasure(db, start)["state"] == "deferred", "the tenant's hold still covers it"
    db = await fold_batches([*events, released("t1", 4, scope="tenant")], 1)
    assert the_erasure(db, start)["state"] == "requested"


async def test_a_hold_on_another_subject_defers_nothing() -> None:
    start = no_basis(1, subject="sub-2")
    db = await fold_batches([placed("h1", 0), start], 1)
    assert the_erasure(db, start)["state"] == "requested"


async def test_a_release_handled_before_its_placement_stays_final() -> None:
    start = no_basis(2)
    db = await fold_batches([released("h1", 0), placed("h1", 1), start], 1)
    hold = db.all()[DocRef(HOLDS, "h1")]
    assert hold is not None
    assert hold["active"] is False
    assert hold["scope"] == "subject", "scope and reason are the placement's"
    assert the_erasure(db, start)["state"] == "requested"


async def test_a_receipt_for_an_erasure_not_started_here_changes_nothing() -> None:
    db = await fold_batches([receipt("er_unknown", "crm-sync", 0)], 1)
    assert db.all() == {}


async def test_a_replay_folds_the_read_models_only() -> None:
    db = Memory()
    await BatchFolder(db, ErasureModel.read_models_only()).fold(
        [placed("h1", 0), no_basis(1), released("h1", 2)]
    )
    assert {ref.collection for ref in db.all()} == {HOLDS}


step = st.one_of(
    st.tuples(st.just("place"), st.sampled_from(["h1", "h2", "t1"])),
    st.tuples(st.just("release"), st.sampled_from(["h1", "h2", "t1"])),
    st.tuples(st.just("start"), st.sampled_from(["sub-1", "sub-2"])),
    st.tuples(st.just("receipts"), st.integers(0, 5)),
)


def build(steps: list[tuple[str, object]]) -> list[Event]:
    events: list[Event] = []
    starts: list[Event] = []
    for minute, (kind, arg) in enumerate(steps):
        if kind in ("place", "release"):
            scope = "tenant" if arg == "t1" else "subject"
            make = placed if kind == "place" else released
            events.append(make(str(arg), minute, scope=scope))
        elif kind == "start":
            starts.append(no_basis(minute, subject=str(arg)))
            events.append(starts[-1])
        elif starts:
            erasure_id = erasure_id_for(starts[int(str(arg)) % len(starts)].envelope.id)
            events.extend(receipt(erasure_id, service, minute) for service in EXPECTED)
    return events


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(step, min_size=1, max_size=10), batch=st.integers(2, 6))
async def test_where_a_batch_ends_changes_nothing(
    steps: list[tuple[str, object]], batch: int
) -> None:
    """Batches of any size end with the documents of one event at a time (each batch
    reading the holds and deferred erasures it needs by query, as the handler does)."""
    events = build(steps)
    one_by_one = await fold_batches(events, 1)
    batched = await fold_batches(events, batch)
    assert strip(batched) == strip(one_by_one)


def strip(db: Memory) -> dict[DocRef, Document | None]:
    return {ref: without_bookkeeping(document) for ref, document in db.all().items()}


def test_ids_are_derived_from_the_cause() -> None:
    cause = str(uuid.uuid4())
    assert erasure_id_for(cause) == erasure_id_for(cause)
    assert erasure_id_for(cause) != erasure_id_for(str(uuid.uuid4()))
