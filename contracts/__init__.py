"""Leadtrail's versioned event contracts: envelope, registry, topics, payload models."""

from contracts.catalog import build_registry
from contracts.envelope import EncryptedPII, EventEnvelope, new_event_id
from contracts.registry import DecodedEvent, EventDefinition, EventRegistry, UnknownEventError
from contracts.topics import ALL_TOPICS, TopicSpec

REGISTRY: EventRegistry = build_registry()
"""The registry of this code base; pure data, built once at import."""

__all__ = [
    "ALL_TOPICS",
    "REGISTRY",
    "DecodedEvent",
    "EncryptedPII",
    "EventDefinition",
    "EventEnvelope",
    "EventRegistry",
    "TopicSpec",
    "UnknownEventError",
    "new_event_id",
]
