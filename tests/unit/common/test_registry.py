"""Versioned contracts: old events are upcast on read and validated as the latest version."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from contracts import EventEnvelope
from contracts.registry import EventDefinition, EventRegistry, UnknownEventError


class GreetedV1(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


class GreetedV2(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    language: str


class GreetedV3(BaseModel):
    model_config = ConfigDict(extra="forbid")
    full_name: str
    language: str


def _registry() -> EventRegistry:
    registry = EventRegistry()
    for version, model in ((1, GreetedV1), (2, GreetedV2), (3, GreetedV3)):
        registry.register(
            EventDefinition("demo.greeted", version, model, topic="demo", description="")
        )

    @registry.upcaster("demo.greeted", 1)
    def _v1_v2(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "language": "en"}

    @registry.upcaster("demo.greeted", 2)
    def _v2_v3(data: dict[str, Any]) -> dict[str, Any]:
        return {"full_name": data["name"], "language": data["language"]}

    return registry


def _envelope(version: int, data: dict[str, Any]) -> EventEnvelope:
    return EventEnvelope(
        type="demo.greeted",
        version=version,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        tenant_id="t",
        subject_id="s",
        correlation_id="c",
        producer="test",
        data=data,
    )


def test_v1_data_is_read_by_v3_code() -> None:
    decoded = _registry().decode(_envelope(1, {"name": "Ada"}))
    assert decoded.data == GreetedV3(full_name="Ada", language="en")
    assert decoded.envelope.version == 3
    assert decoded.original_version == 1


def test_current_version_passes_through() -> None:
    decoded = _registry().decode(_envelope(3, {"full_name": "Ada", "language": "it"}))
    assert decoded.data == GreetedV3(full_name="Ada", language="it")


def test_unknown_versions_and_types_fail_loudly() -> None:
    with pytest.raises(UnknownEventError):
        _registry().decode(_envelope(4, {}))
    with pytest.raises(UnknownEventError):
        _registry().latest("demo.unknown")


def test_invalid_data_fails_validation() -> None:
    with pytest.raises(ValidationError):
        _registry().decode(_envelope(2, {"name": "Ada"}))


def test_versions_are_registered_in_order_and_once() -> None:
    registry = EventRegistry()
    with pytest.raises(ValueError, match="before v1"):
        registry.register(EventDefinition("x.y", 2, GreetedV2, topic="t", description=""))
    registry.register(EventDefinition("x.y", 1, GreetedV1, topic="t", description=""))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(EventDefinition("x.y", 1, GreetedV1, topic="t", description=""))


def test_definition_for_finds_the_producer_model() -> None:
    registry = _registry()
    assert registry.definition_for(GreetedV2).version == 2
    with pytest.raises(UnknownEventError):
        registry.definition_for(BaseModel)
