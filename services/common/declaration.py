"""What every service declares once, and everything else reads.

Each service package has a ``declaration.py`` with one :class:`ServiceDeclaration`: its name,
its settings, its Kafka subscriptions, which of its collections are read models (rebuilt by
``leadtrail replay``) and which are operational state (never replayed), how to project events
into its read models, its part of a subject's access export, and ``build``, which makes the
running service (:class:`Service`) on a :class:`~services.common.runtime.Runtime`.
``services.declarations()`` lists the five. The runtime (:func:`~services.common.runtime.
create_app`), the local stack, ``leadtrail replay``, ``leadtrail export`` and ``audit``, the
AsyncAPI documents and the contract test of the catalogue's consumers all read these, so a
service is described in one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from fastapi import APIRouter
from pymongo.asynchronous.database import AsyncDatabase

from contracts import EventEnvelope
from contracts.registry import EventRegistry
from contracts.topics import TopicSpec
from services.common.consumer import Subscription
from services.common.crypto import PiiCipher
from services.common.export_package import ExportPart
from services.common.http import TenantGate
from services.common.settings import CommonSettings
from services.common.store import Collections, Document

if TYPE_CHECKING:
    from services.common.runtime import Runtime

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "KEYRING_COLLECTION",
    "KEYS",
    "ExportSources",
    "OperationalCollection",
    "Projector",
    "Service",
    "ServiceDeclaration",
]

SettingsT = TypeVar("SettingsT", bound=CommonSettings)
HandlersT = TypeVar("HandlersT")

DEFAULT_MAX_BODY_BYTES = 64 * 1024
KEYRING_COLLECTION = "data_keys"


@dataclass(frozen=True)
class OperationalCollection:
    """A collection that is not derived from events: never replayed, never dropped."""

    name: str
    why: str


KEYS = OperationalCollection(
    KEYRING_COLLECTION, "subjects' data keys: not in the event log, never replayed or dropped"
)
"""Every service's keyring (the runtime creates it)."""


@dataclass(frozen=True)
class Projector:
    """The read-model side of a service over some collections: indexes, then batches of
    events folded in order (validated and upcast by the registry, as live)."""

    ensure_indexes: Callable[[], Awaitable[None]]
    apply_all: Callable[[Sequence[EventEnvelope]], Awaitable[None]]

    async def apply(self, envelope: EventEnvelope) -> None:
        """One event alone."""
        await self.apply_all([envelope])


@dataclass(frozen=True)
class ExportSources:
    """What an export part is read from outside the service (``leadtrail export``): the
    deployment's database, a cipher over its keyring, the tenants' configuration."""

    db: AsyncDatabase[Document]
    cipher: PiiCipher
    config_dir: Path


BackgroundLoop = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Service(Generic[HandlersT]):
    """A service built on a runtime: the one object its subscriptions are handled by, its
    HTTP routers, and what runs at start-up and in the background."""

    handlers: HandlersT
    """The object every subscription's ``handle_batch`` is bound to."""
    routers: Sequence[APIRouter] = ()
    tenant_gate: TenantGate | None = None
    """Authentication and rate limit of the routes that take a :data:`~services.common.http.
    Caller`; ``None`` for a service without tenant routes."""
    startup: Sequence[Callable[[], Awaitable[None]]] = ()
    """Run after MongoDB answers and before the subscribers start: indexes, caches."""
    background: dict[str, BackgroundLoop] = field(default_factory=dict)
    """Name -> long-running loop (:func:`~services.common.wakeup.run_when_due` on a
    :meth:`Runtime.wakeup`): at shutdown their wakeups stop them, cancelled only if they
    overrun ``shutdown_grace_s``."""


@dataclass(frozen=True)
class ServiceDeclaration(Generic[SettingsT, HandlersT]):
    name: str
    """The service's name: its Kafka client id, log field, metrics label, producer."""
    package: str
    """Its Python package: ``python -m <package>`` runs it."""
    title: str
    settings: type[SettingsT]
    subscriptions: tuple[Subscription[HandlersT], ...]
    """Consumer groups, topics and event types; each batch goes to ``handlers``."""
    read_models: tuple[str, ...]
    """Collections derived purely from events: ``projector`` rebuilds them."""
    operational: tuple[OperationalCollection, ...]
    build: Callable[[Runtime, SettingsT], Service[HandlersT]]
    projector: Callable[[Collections], Projector]
    """The read models' projection on some collections, as the live handlers fold them."""
    export_part: Callable[[ExportSources, str, str], Awaitable[ExportPart]]
    """(sources, tenant id, subject id) -> its part of the subject's access export."""
    max_body_bytes: Callable[[SettingsT], int] = lambda settings: DEFAULT_MAX_BODY_BYTES

    @property
    def topics(self) -> list[TopicSpec]:
        """The topics its subscriptions read, each once, in the order first named."""
        seen: dict[str, TopicSpec] = {}
        for subscription in self.subscriptions:
            for topic in subscription.topics:
                seen.setdefault(topic.name, topic)
        return list(seen.values())

    def wanted(self, registry: EventRegistry, topic: str | None = None) -> frozenset[str]:
        """Event types (of ``topic``, a logical name, or of every topic) it handles."""
        return frozenset().union(*(s.wanted(registry, topic) for s in self.subscriptions))

    @property
    def collections(self) -> tuple[str, ...]:
        return (*self.read_models, *(c.name for c in self.operational))
