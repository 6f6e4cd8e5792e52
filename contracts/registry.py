"""Registry of event types and their versions, with upcasting.

Each (type, version) pair names a pydantic model for ``data`` and, where the event carries
personal data, a model for the decrypted ``pii``. Published versions never change; a new
version is registered beside the old one with an upcaster ``vN -> vN+1`` so that old events
still replay (the pattern of ``eventsourcing``'s ``upcast_vN_vN+1``).

Consumers call :meth:`EventRegistry.decode`, which upcasts an envelope's ``data`` step by step to
the latest version and validates it, so handler code only ever sees current models.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from contracts.envelope import EventEnvelope

__all__ = [
    "DecodedEvent",
    "EventDefinition",
    "EventRegistry",
    "UnknownEventError",
    "Upcaster",
]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
M = TypeVar("M", bound=BaseModel)


class UnknownEventError(LookupError):
    """An envelope names a type or version this code base does not know."""


@dataclass(frozen=True)
class EventDefinition:
    """One published version of one event type."""

    type: str
    version: int
    data: builtins.type[BaseModel]
    topic: str
    description: str
    pii: builtins.type[BaseModel] | None = None
    producers: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, int]:
        return (self.type, self.version)


@dataclass(frozen=True)
class DecodedEvent(Generic[M]):
    """An envelope whose ``data`` has been upcast to the latest version and validated."""

    envelope: EventEnvelope
    data: M
    original_version: int


@dataclass
class EventRegistry:
    """All known event definitions and the upcasters between their versions."""

    _definitions: dict[tuple[str, int], EventDefinition] = field(default_factory=dict)
    _upcasters: dict[tuple[str, int], Upcaster] = field(default_factory=dict)
    _pii_upcasters: dict[tuple[str, int], Upcaster] = field(default_factory=dict)

    def register(self, definition: EventDefinition) -> EventDefinition:
        if definition.key in self._definitions:
            raise ValueError(f"{definition.type} v{definition.version} is already registered")
        previous = definition.version - 1
        if previous >= 1 and (definition.type, previous) not in self._definitions:
            raise ValueError(
                f"{definition.type} v{definition.version} registered before v{previous}"
            )
        self._definitions[definition.key] = definition
        return definition

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: register the function turning ``data`` of ``from_version`` into the next."""

        def decorate(function: Upcaster) -> Upcaster:
            self._upcasters[(event_type, from_version)] = function
            return function

        return decorate

    def pii_upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: like :meth:`upcaster`, for the decrypted personal data of an event."""

        def decorate(function: Upcaster) -> Upcaster:
            self._pii_upcasters[(event_type, from_version)] = function
            return function

        return decorate

    def definitions(self) -> Iterator[EventDefinition]:
        yield from sorted(self._definitions.values(), key=lambda d: d.key)

    def get(self, event_type: str, version: int) -> EventDefinition:
        try:
            return self._definitions[(event_type, version)]
        except KeyError:
            raise UnknownEventError(f"unknown event {event_type} v{version}") from None

    def latest(self, event_type: str) -> EventDefinition:
        versions = [v for (t, v) in self._definitions if t == event_type]
        if not versions:
            raise UnknownEventError(f"unknown event type {event_type}")
        return self._definitions[(event_type, max(versions))]

    def definition_for(self, data_model: type[BaseModel]) -> EventDefinition:
        """The definition whose ``data`` model is exactly this class (what producers publish)."""
        for definition in self._definitions.values():
            if definition.data is data_model:
                return definition
        raise UnknownEventError(f"{data_model.__name__} is not a registered event payload")

    def types_on_topic(self, topic: str) -> list[str]:
        return sorted({d.type for d in self._definitions.values() if d.topic == topic})

    def upcast_data(self, event_type: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
        return self._upcast(self._upcasters, event_type, version, data)

    def upcast_pii(self, event_type: str, version: int, pii: dict[str, Any]) -> dict[str, Any]:
        return self._upcast(self._pii_upcasters, event_type, version, pii)

    def _upcast(
        self,
        upcasters: dict[tuple[str, int], Upcaster],
        event_type: str,
        version: int,
        payload: dict[str, Any],
    ) -> dict[str, Any]:
        self.get(event_type, version)  # unknown versions fail loudly
        latest = self.latest(event_type).version
        for step in range(version, latest):
            upcast = upcasters.get((event_type, step))
            if upcast is not None:
                payload = upcast(payload)
        return payload

    def decode(self, envelope: EventEnvelope) -> DecodedEvent[BaseModel]:
        """Validate ``envelope.data`` as its own version, upcast it to the latest version of its
        type and validate it again, so upcasters only ever see well-formed input."""
        latest = self.latest(envelope.type)
        stored = self.get(envelope.type, envelope.version).data.model_validate(envelope.data)
        data = self.upcast_data(envelope.type, envelope.version, stored.model_dump(mode="json"))
        model = latest.data.model_validate(data)
        current = envelope.model_copy(
            update={"version": latest.version, "data": model.model_dump(mode="json")}
        )
        return DecodedEvent(envelope=current, data=model, original_version=envelope.version)
