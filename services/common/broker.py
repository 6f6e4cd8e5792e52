"""The FastStream Kafka broker every service uses.

Producers use ``acks=all``: a publish returns only once every in-sync replica has the event.
They are *not* Kafka-idempotent: aiokafka's idempotent producer treats ``OutOfOrderSequenceNumber``
as fatal, and after a broker restart (the e2e fault test) a service got it on every publish and
never published again. Without it a retried batch may be written twice; every event carries its
id, consumers deduplicate by it (``apply_once``) and ``leadtrail verify`` counts an identical copy
as a redelivery. Order per partition still holds: aiokafka keeps one batch per partition in
flight. Consumers never auto-commit: an offset is committed only after its message was handled
(see :mod:`services.common.consumer`).
"""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker

from services.common.logging import get_logger
from services.common.settings import CommonSettings

__all__ = ["KAFKA_REQUEST_TIMEOUT_MS", "make_broker"]

KAFKA_REQUEST_TIMEOUT_MS = 15_000
"""How long any one Kafka request may wait for its answer (aiokafka's default is 40 s)."""


def make_broker(settings: CommonSettings, *, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=False,  # see the module docstring
        request_timeout_ms=KAFKA_REQUEST_TIMEOUT_MS,
        linger_ms=0,
        logger=get_logger("faststream"),
        log_level=logging.DEBUG,  # per-message "Received"/"Processed" lines only at debug
        graceful_timeout=settings.shutdown_grace_s,  # records being handled may finish
    )
