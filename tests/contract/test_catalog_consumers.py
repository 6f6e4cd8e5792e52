"""The catalogue's consumers (published as ``x-consumers`` in every JSON Schema) are the
services that really subscribe to each event type.

The two are written in different places (``contracts/catalog.py``, each service's
``SUBSCRIPTIONS``) and had drifted: retention-scheduler read ``lead.rectified`` without being
listed, ``restriction.*`` named services that never read it. Consumers outside the cluster
(``operator``, ``crm-side consumers``) are documentation only and not checked.
"""

from __future__ import annotations

import importlib

import pytest

from contracts.catalog import EVERYONE, build_registry
from contracts.registry import EventDefinition
from services.common.consumer import Subscription

REGISTRY = build_registry()


def subscribed() -> dict[str, set[str]]:
    """Event type -> the services whose subscriptions hand it to a handler."""
    readers: dict[str, set[str]] = {}
    for service in EVERYONE:
        app = importlib.import_module(f"services.{service.replace('-', '_')}.app")
        subscriptions: tuple[Subscription[object], ...] = app.SUBSCRIPTIONS
        for subscription in subscriptions:
            for event_type in subscription.wanted(REGISTRY):
                readers.setdefault(event_type, set()).add(service)
    return readers


READERS = subscribed()


@pytest.mark.parametrize(
    "definition", list(REGISTRY.definitions()), ids=lambda d: f"{d.type}.v{d.version}"
)
def test_the_catalogue_names_exactly_the_services_that_subscribe(
    definition: EventDefinition,
) -> None:
    declared = {name for name in definition.consumers if name in EVERYONE}
    event_type = definition.type

    assert declared == READERS.get(event_type, set()), (
        f"{event_type}: contracts/catalog.py lists {sorted(declared)}, the services' "
        f"SUBSCRIPTIONS read it in {sorted(READERS.get(event_type, set()))}"
    )


def test_every_subscribed_type_is_in_the_catalogue() -> None:
    known = {definition.type for definition in REGISTRY.definitions()}

    assert set(READERS) <= known
