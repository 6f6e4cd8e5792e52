"""Creating Leadtrail's topics (idempotent): used by ``make up``, the test fixtures and
``leadtrail topics create``. Services never create topics implicitly
(``auto.create.topics.enable=false``), so a typo can't invent one."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts.topics import ALL_TOPICS, TopicSpec

__all__ = ["TopicCreationError", "ensure_topics"]

TOPIC_ALREADY_EXISTS = 36


class TopicCreationError(RuntimeError):
    pass


async def ensure_topics(
    bootstrap: str,
    prefix: str,
    specs: Iterable[TopicSpec] = ALL_TOPICS,
    *,
    replication_factor: int = 1,
) -> list[str]:
    """Create the topics that do not exist yet; returns the physical names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.physical(prefix) not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [
                NewTopic(
                    name=spec.physical(prefix),
                    num_partitions=spec.partitions,
                    replication_factor=replication_factor,
                    topic_configs=dict(spec.config),
                )
                for spec in missing
            ],
            timeout_ms=30_000,
        )
        failures = [
            f"{error[0]}: error {error[1]} {error[2] if len(error) > 2 else ''}".strip()
            for error in response.topic_errors
            if error[1] not in (0, TOPIC_ALREADY_EXISTS)
        ]
        if failures:
            raise TopicCreationError("could not create topics: " + "; ".join(failures))
        return [spec.physical(prefix) for spec in missing]
    finally:
        await admin.close()
