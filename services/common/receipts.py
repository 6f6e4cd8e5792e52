"""Answering erasure and rectification orchestration with receipts (R24, R25).

Each service that receives ``erasure.requested`` (or ``lead.rectified``) does its part and then
sends one receipt. The receipt's id is derived from the request event and the service name, so
a redelivered request produces the same receipt id and erasure-propagator counts it once
(:meth:`~services.common.publisher.EventPublisher.publish_caused`).
"""

from __future__ import annotations

from contracts import EventEnvelope
from contracts.events.erasure import ErasureReceiptV1, RectificationReceiptV1
from services.common.publisher import EventPublisher

__all__ = ["send_erasure_receipt", "send_rectification_receipt"]


async def send_erasure_receipt(
    publisher: EventPublisher, cause: EventEnvelope, service: str, actions: list[str]
) -> None:
    await publisher.publish_caused(
        cause,
        ErasureReceiptV1(erasure_id=cause.data["erasure_id"], service=service, actions=actions),
        what=f"receipt/{service}",
    )


async def send_rectification_receipt(
    publisher: EventPublisher, cause: EventEnvelope, service: str, actions: list[str]
) -> None:
    await publisher.publish_caused(
        cause,
        RectificationReceiptV1(
            rectification_id=cause.data["rectification_id"], service=service, actions=actions
        ),
        what=f"receipt/{service}",
    )
