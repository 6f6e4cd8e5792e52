"""Answering erasure and rectification orchestration with receipts (R24, R25).

Each service that receives ``erasure.requested`` (or ``lead.rectified``) does its part and then
sends one receipt. The receipt's id is derived from the request event and the service name, so
a redelivered request produces the same receipt id and erasure-propagator counts it once.
"""

from __future__ import annotations

import uuid

from contracts import EventEnvelope
from contracts.events.erasure import ErasureReceiptV1, RectificationReceiptV1
from services.common.publisher import EventPublisher

__all__ = ["send_erasure_receipt", "send_rectification_receipt"]

NAMESPACE = uuid.UUID("c3f0d9a2-6b1e-4e7f-8a2d-1f9e8d7c6b5a")


def _receipt_id(cause: EventEnvelope, service: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{cause.id}/receipt/{service}"))


async def send_erasure_receipt(
    publisher: EventPublisher, cause: EventEnvelope, service: str, actions: list[str]
) -> None:
    await publisher.publish(
        ErasureReceiptV1(erasure_id=cause.data["erasure_id"], service=service, actions=actions),
        tenant_id=cause.tenant_id,
        subject_id=cause.subject_id,
        correlation_id=cause.correlation_id,
        causation_id=cause.id,
        event_id=_receipt_id(cause, service),
    )


async def send_rectification_receipt(
    publisher: EventPublisher, cause: EventEnvelope, service: str, actions: list[str]
) -> None:
    await publisher.publish(
        RectificationReceiptV1(
            rectification_id=cause.data["rectification_id"], service=service, actions=actions
        ),
        tenant_id=cause.tenant_id,
        subject_id=cause.subject_id,
        correlation_id=cause.correlation_id,
        causation_id=cause.id,
        event_id=_receipt_id(cause, service),
    )
