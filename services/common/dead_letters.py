"""Sending a dead letter: one format (:class:`~contracts.dead_letter.DeadLetterV1`), one topic,
one key and one set of headers, whoever sends it: a consumer giving up on a record
(:mod:`services.common.consumer`) or crm-sync giving up on a CRM call. ``leadtrail dlq``
reads them back and redrives them by these fields."""

from __future__ import annotations

import base64

from faststream.kafka import KafkaBroker

from contracts.dead_letter import DeadLetterV1
from contracts.topics import DEAD_LETTERS
from services.common.settings import CommonSettings

__all__ = ["b64", "send_dead_letter"]


def b64(data: bytes) -> str:
    """How a letter carries the failed record's key and value."""
    return base64.b64encode(data).decode()


async def send_dead_letter(
    broker: KafkaBroker, settings: CommonSettings, letter: DeadLetterV1, *, key: bytes | None
) -> None:
    """Publish ``letter`` on the dead-letter topic under the failed record's ``key`` (so a
    subject's letters stay in one partition, in order)."""
    await broker.publish(
        letter.model_dump_json().encode(),
        topic=settings.topic(DEAD_LETTERS.name),
        key=key,
        headers={"service": letter.service, "source_topic": letter.source_topic},
    )
