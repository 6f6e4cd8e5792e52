"""Events an operator publishes: retention policies and legal holds (R16, R18).

These events carry no personal data; they go through the same envelope, registry and
``acks=all`` producer as the services' events, with ``producer = "operator"``.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from contracts import REGISTRY, EventEnvelope
from contracts.events.retention import (
    TENANT_SUBJECT,
    RetentionHoldPlacedV1,
    RetentionHoldReleasedV1,
    RetentionPolicySetV1,
)
from services.common.broker import make_broker
from services.common.clock import Clock, SystemClock
from services.common.crypto import InMemoryDataKeyring, PiiCipher
from services.common.publisher import EventPublisher
from services.common.settings import CommonSettings
from services.common.store import Document, find_owned
from services.retention_scheduler.declaration import DEFAULTS, load_maximums, validate_period

__all__ = [
    "OperatorError",
    "hold_to_release",
    "list_holds",
    "operator_publisher",
    "place_hold",
    "release_hold",
    "set_policy",
]


class OperatorError(ValueError):
    pass


@asynccontextmanager
async def operator_publisher(
    settings: CommonSettings, clock: Clock | None = None
) -> AsyncIterator[EventPublisher]:
    broker = make_broker(settings, client_id="leadtrail-operator")
    await broker.start()
    try:
        yield EventPublisher(
            broker=broker,
            settings=settings,
            registry=REGISTRY,
            cipher=PiiCipher(InMemoryDataKeyring()),  # operator events carry no personal data
            clock=clock or SystemClock(),
            producer="operator",
        )
    finally:
        await broker.stop()


async def set_policy(
    publisher: EventPublisher,
    config_dir: Path,
    *,
    tenant_id: str,
    category: str,
    period_days: int,
    set_by: str,
) -> EventEnvelope:
    """Shorten (never lengthen beyond the maximum) a tenant's retention period (R16)."""
    validate_period(category, period_days, load_maximums(config_dir))
    return await publisher.publish(
        RetentionPolicySetV1(
            category=DEFAULTS[category].category,
            period_days=period_days,
            anchor=DEFAULTS[category].anchor,
            set_by=set_by,
        ),
        tenant_id=tenant_id,
        subject_id=TENANT_SUBJECT,
        correlation_id=str(uuid.uuid4()),
    )


async def place_hold(
    publisher: EventPublisher,
    *,
    tenant_id: str,
    subject_id: str | None,
    reason: str,
    placed_by: str,
) -> EventEnvelope:
    """A legal hold on one subject, or on the whole tenant when ``subject_id`` is None (R18)."""
    if not reason.strip():
        raise OperatorError("a legal hold needs a reason")
    return await publisher.publish(
        RetentionHoldPlacedV1(
            hold_id=f"hold_{secrets.token_hex(8)}",
            scope="tenant" if subject_id is None else "subject",
            reason=reason,
            placed_by=placed_by,
        ),
        tenant_id=tenant_id,
        subject_id=subject_id or TENANT_SUBJECT,
        correlation_id=str(uuid.uuid4()),
    )


async def release_hold(
    publisher: EventPublisher,
    *,
    tenant_id: str,
    subject_id: str | None,
    hold_id: str,
    released_by: str,
    reason: str | None = None,
) -> EventEnvelope:
    return await publisher.publish(
        RetentionHoldReleasedV1(
            hold_id=hold_id,
            scope="tenant" if subject_id is None else "subject",
            released_by=released_by,
            reason=reason,
        ),
        tenant_id=tenant_id,
        subject_id=subject_id or TENANT_SUBJECT,
        correlation_id=str(uuid.uuid4()),
    )


async def list_holds(
    holds: AsyncCollection[Document], tenant_id: str, *, include_released: bool = False
) -> list[Document]:
    """A tenant's legal holds as erasure-propagator knows them (its ``erasure_holds`` read
    model, the one that decides whether an erasure waits), by id. A release whose placement
    has not arrived yet (the two may travel in different partitions) is not a hold: left out."""
    query: dict[str, object] = {"tenant_id": tenant_id, "scope": {"$exists": True}}
    if not include_released:
        query["active"] = True
    return [document async for document in holds.find(query, sort=[("_id", ASCENDING)])]


async def hold_to_release(
    holds: AsyncCollection[Document], tenant_id: str, hold_id: str
) -> Document:
    """The placed, still active hold ``hold_id`` of ``tenant_id``, or :class:`OperatorError`.

    Checked before a release is published: a release of a mistyped id would be accepted by
    every service (a release counts by hold id) and release nothing, while the operator was
    told the hold is gone. The release then travels under the placement's subject, so the
    subject's audit timeline shows both."""
    hold = await find_owned(holds, hold_id, tenant_id)
    if hold is None or "scope" not in hold:
        raise OperatorError(
            f"no hold {hold_id!r} in tenant {tenant_id!r} (see: leadtrail holds list --tenant "
            f"{tenant_id}; a hold placed a moment ago may not have reached erasure-propagator)"
        )
    if not hold.get("active"):
        raise OperatorError(f"hold {hold_id!r} was already released")
    return hold
