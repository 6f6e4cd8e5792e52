"""The record a consumer writes to the ``dead-letters`` topic when it gives up on a message.

A dead letter is not an event about a data subject: it wraps whatever bytes could not be handled
(maybe not even JSON), with enough context to inspect and redrive it (``leadtrail dlq``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.envelope import new_event_id

__all__ = ["DEAD_LETTER_VERSION", "DeadLetterV1"]

DEAD_LETTER_VERSION = 1


class DeadLetterV1(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=new_event_id)
    version: Annotated[int, Field(ge=1, le=1)] = DEAD_LETTER_VERSION
    failed_at: AwareDatetime
    service: str
    consumer_group: str
    source_topic: str
    source_partition: int
    source_offset: int
    key_b64: str | None = Field(description="the original Kafka key, base64")
    value_b64: str = Field(description="the original Kafka value, base64")
    headers: dict[str, str] = Field(default_factory=dict)
    error_type: str
    error_message: Annotated[str, Field(max_length=4000)]
    attempts: int = Field(ge=1)
    event_id: str | None = None
    event_type: str | None = None
    tenant_id: str | None = None
