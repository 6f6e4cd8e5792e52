"""The event envelope every Leadtrail event travels in (see DESIGN.md, "Event envelope").

An envelope carries routing and audit facts in clear (`type`, `version`, `tenant_id`,
`subject_id`, causation) and splits the payload in two:

* ``data``: non-personal facts, readable forever (the audit trail and aggregates survive erasure);
* ``pii``: personal data, encrypted with the data subject's own key (crypto-shredding).

The envelope itself is version 1 and never changes shape; event payloads are versioned per type.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import uuid_utils
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

__all__ = ["ChainPosition", "EncryptedPII", "EventEnvelope", "Integrity", "new_event_id"]


def new_event_id() -> str:
    """A UUIDv7: time-ordered, so ids sort roughly by creation time."""
    return str(uuid_utils.uuid7())


class EncryptedPII(BaseModel):
    """Personal data of one event, encrypted with the subject's data key.

    ``ciphertext`` is base64 of AES-256-GCM(nonce, json(pii), aad=event id); ``key_id`` names the
    subject's data key. Once that key is destroyed the ciphertext is noise.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    alg: Literal["AES-256-GCM"] = "AES-256-GCM"
    key_id: str = Field(min_length=1, max_length=200)
    nonce: str = Field(min_length=1, max_length=64, description="base64, 12 bytes")
    ciphertext: str = Field(min_length=1, description="base64 of ciphertext with GCM tag")


class ChainPosition(BaseModel):
    """One position in a producer instance's chain of events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chain: str = Field(min_length=1, max_length=120)
    seq: int = Field(ge=0)


class Integrity(BaseModel):
    """Tamper evidence (docs/integrity.md): the event's place in its producer instance's chain
    and an HMAC-SHA256 over the canonical form of the whole envelope except ``mac`` itself.

    ``void`` lists positions of earlier events whose publish failed (they may be missing from
    the log without anyone having removed them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alg: Literal["HMAC-SHA256"] = "HMAC-SHA256"
    chain: str = Field(
        min_length=1, max_length=120, description="producer name/instance id (a UUIDv7)"
    )
    seq: int = Field(ge=0, description="0 for the chain's first event, then +1 per event")
    prev: str | None = Field(
        pattern=r"^[0-9a-f]{64}$", description="mac of the chain's previous event; null at seq 0"
    )
    void: tuple[ChainPosition, ...] = Field(default=(), max_length=500)
    mac: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex HMAC-SHA256, lower case")


class EventEnvelope(BaseModel):
    """One event on the log. ``data`` is validated against the registered model for
    (``type``, ``version``) by :class:`contracts.registry.EventRegistry`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=new_event_id, min_length=1, max_length=64)
    type: str = Field(pattern=r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$", max_length=100)
    version: int = Field(ge=1)
    occurred_at: AwareDatetime
    tenant_id: str = Field(min_length=1, max_length=64)
    subject_id: str = Field(min_length=1, max_length=64)
    correlation_id: str = Field(min_length=1, max_length=64)
    causation_id: str | None = Field(default=None, max_length=64)
    producer: str = Field(min_length=1, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict)
    pii: EncryptedPII | None = None
    integrity: Integrity | None = Field(
        default=None,
        description="tamper evidence (docs/integrity.md); absent on events published before it",
    )

    @field_validator("occurred_at")
    @classmethod
    def _utc_milliseconds(cls, value: datetime) -> datetime:
        """UTC, to the millisecond: the precision MongoDB (BSON dates) keeps, so a read model
        and a replay of the log agree exactly."""
        value = value.astimezone(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)

    def kafka_key(self) -> bytes:
        """Kafka key: the subject, so one person's events stay ordered in one partition."""
        return self.subject_id.encode()

    def kafka_headers(self) -> dict[str, str]:
        """Headers repeat routing facts so consumers can filter without decoding."""
        return {
            "type": self.type,
            "version": str(self.version),
            "tenant_id": self.tenant_id,
            "event_id": self.id,
            "correlation_id": self.correlation_id,
        }
