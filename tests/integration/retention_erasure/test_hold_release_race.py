"""Two erasure-propagator replicas: a hold's release and a deferral under that hold, folded at
the same time, each reading before the other wrote. Whichever reads again second requests the
erasure; before, it stayed deferred until its deadline reported it overdue.

The race is made deterministic: a second :class:`ErasureHandlers` on the same store plays the
other replica, and its fold is handed what its reads returned *before* the other replica's
write (its ``seeds`` are taken early). Its events are handed to it directly, so the live
replica never sees them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest

from contracts import EventEnvelope
from ops.operator import place_hold, release_hold
from services.common.pipeline import DocRef
from services.common.runtime import Runtime
from services.common.store import Document
from services.erasure_propagator.domain import Seeds
from services.erasure_propagator.handlers import ErasureHandlers
from services.erasure_propagator.settings import ErasureSettings
from services.erasure_propagator.store import ErasureStore
from tests.helpers import eventually
from tests.integration.retention_erasure.conftest import Lifecycle

pytestmark = pytest.mark.integration


@asynccontextmanager
async def other_replica(lifecycle: Lifecycle) -> AsyncIterator[ErasureHandlers]:
    """A second erasure-propagator process's handlers: its own clients and metrics, the same
    store, topics, keys and clock."""
    live = lifecycle.stack.runtimes["erasure_propagator"]
    assert isinstance(live.settings, ErasureSettings)
    runtime = Runtime.build("erasure-propagator", live.settings, live.clock)
    await runtime.broker.start()
    try:
        yield ErasureHandlers(runtime, ErasureStore(runtime.db), live.settings)
    finally:
        await runtime.broker.stop()
        await runtime.mongo.close()


@pytest.fixture
async def replica(lifecycle: Lifecycle) -> AsyncIterator[ErasureHandlers]:
    async with other_replica(lifecycle) as handlers:
        yield handlers


@pytest.fixture
async def third_replica(lifecycle: Lifecycle) -> AsyncIterator[ErasureHandlers]:
    async with other_replica(lifecycle) as handlers:
        yield handlers


def envelope(lifecycle: Lifecycle, subject_id: str, type_: str, version: int, **data: Any) -> Any:
    return EventEnvelope.model_validate(
        {
            "id": str(uuid.uuid4()),
            "type": type_,
            "version": version,
            "occurred_at": lifecycle.clock.now(),
            "tenant_id": "acme",
            "subject_id": subject_id,
            "producer": "lead-ingest" if type_.startswith("privacy") else "operator",
            "correlation_id": str(uuid.uuid4()),
            "data": data,
        }
    )


def erasure_request(lifecycle: Lifecycle, subject_id: str) -> list[EventEnvelope]:
    """A verified erasure request of the subject, as lead-ingest publishes it."""
    request_id = f"pr_{uuid.uuid4().hex[:16]}"
    received = envelope(
        lifecycle,
        subject_id,
        "privacy.request.received",
        1,
        request_id=request_id,
        request_type="erasure",
        relayed_by_tenant=True,
        subject_known=True,
        identified_by=["email"],
        deadline=lifecycle.clock.now() + timedelta(days=14),
        verification="tenant_attestation",
        purposes=[],
        rectify_fields=[],
    )
    verified = envelope(
        lifecycle,
        subject_id,
        "privacy.request.verified",
        2,
        request_id=request_id,
        request_type="erasure",
        method="tenant_attestation",
        attested_by_hash="0" * 64,
        legacy_attested_by=None,
    )
    return [received, verified]


async def hold_on(lifecycle: Lifecycle, subject_id: str) -> str:
    placed = await place_hold(
        lifecycle.operator, tenant_id="acme", subject_id=subject_id, reason="audit", placed_by="t"
    )
    hold_id = str(placed.data["hold_id"])
    await eventually(
        lambda: lifecycle.propagator.store.holds.find_one({"_id": hold_id, "active": True}),
        what="the hold to reach erasure-propagator",
    )
    return hold_id


async def erasure_of(lifecycle: Lifecycle, subject_id: str, *states: str) -> Document:
    """The subject's erasure once in one of ``states``."""
    store = lifecycle.propagator.store
    return await eventually(
        lambda: store.erasures.find_one({"subject_id": subject_id, "state": {"$in": states}}),
        what=f"the erasure of {subject_id} to be {' or '.join(states)}",
    )


def stale(seeded: dict[DocRef, Document | None]) -> Any:
    async def seeds(needed: Seeds) -> dict[DocRef, Document | None]:
        return seeded

    return seeds


async def test_a_deferral_folded_while_its_hold_was_released_is_requested(
    lifecycle: Lifecycle, replica: ErasureHandlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deferring replica read the hold active; the release was folded (by the live
    replica, finding nothing deferred) before the deferral was written."""
    subject = (await lifecycle.capture())["subject_id"]
    hold_id = await hold_on(lifecycle, subject)
    read_before = await replica.store.seeds(Seeds(frozenset({"acme"}), frozenset({"acme"})))
    assert any(ref.id == hold_id for ref in read_before)

    await release_hold(
        lifecycle.operator, tenant_id="acme", subject_id=subject, hold_id=hold_id, released_by="t"
    )
    await eventually(
        lambda: lifecycle.propagator.store.holds.find_one({"_id": hold_id, "active": False}),
        what="the live replica to fold the release",
    )
    monkeypatch.setattr(replica.store, "seeds", stale(read_before))
    await replica.on_events(erasure_request(lifecycle, subject))

    requested = await erasure_of(lifecycle, subject, "requested", "completed")
    assert requested["hold_ids"] == [hold_id], "deferred first, as its reads said"
    await lifecycle.stack.wait_for_event(
        "erasure-events",
        lambda e: e.type == "erasure.requested" and e.data["erasure_id"] == requested["_id"],
    )
    await erasure_of(lifecycle, subject, "completed")  # every service confirmed it


async def test_a_release_folded_while_a_deferral_was_written_requests_it(
    lifecycle: Lifecycle,
    replica: ErasureHandlers,
    third_replica: ErasureHandlers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The releasing replica read no deferred erasure; the deferral was written (by another
    replica) before the release was."""
    deferring, releasing = replica, third_replica
    subject = (await lifecycle.capture())["subject_id"]
    hold_id = await hold_on(lifecycle, subject)
    read_before = await releasing.store.seeds(Seeds(frozenset({"acme"}), frozenset({"acme"})))

    await deferring.on_events(erasure_request(lifecycle, subject))
    deferred = await erasure_of(lifecycle, subject, "deferred")

    monkeypatch.setattr(releasing.store, "seeds", stale(read_before))
    release = envelope(
        lifecycle,
        subject,
        "retention.hold_released",
        1,
        hold_id=hold_id,
        scope="subject",
        released_by="t",
        reason="case closed",
    )
    await releasing.on_events([release])
    requested = await erasure_of(lifecycle, subject, "requested", "completed")
    assert requested["_id"] == deferred["_id"]
    assert requested["requested_at"] is not None

    # A redelivery of the release acts again (same event ids), and requests nothing new.
    await releasing.on_events([release])
    await erasure_of(lifecycle, subject, "completed")
    published = [
        e
        for e in await lifecycle.stack.events("erasure-events")
        if e.type == "erasure.requested" and e.data["erasure_id"] == deferred["_id"]
    ]
    assert {e.id for e in published} == {published[0].id}
