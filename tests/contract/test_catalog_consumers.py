"""The catalogue's consumers (published as ``x-consumers`` in every JSON Schema) are the
services that really subscribe to each event type.

The catalogue stands alone (contracts import no service), so the consumer lists are written
there and checked here against each service's declared subscriptions
(``services/<service>/declaration.py``). The two had drifted: retention-scheduler read
``lead.rectified`` without being listed, ``restriction.*`` named services that never read it.
Consumers outside the cluster (``operator``, ``crm-side consumers``) are documentation only
and not checked.
"""

from __future__ import annotations

import pytest

from contracts.catalog import EVERYONE, build_registry
from contracts.registry import EventDefinition
from services import declarations

REGISTRY = build_registry()


def subscribed() -> dict[str, set[str]]:
    """Event type -> the services whose subscriptions hand it to a handler."""
    readers: dict[str, set[str]] = {}
    for declaration in declarations():
        for event_type in declaration.wanted(REGISTRY):
            readers.setdefault(event_type, set()).add(declaration.name)
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
        f"declared subscriptions read it in {sorted(READERS.get(event_type, set()))}"
    )


def test_everyone_is_the_declared_services() -> None:
    assert set(EVERYONE) == {declaration.name for declaration in declarations()}


def test_every_subscribed_type_is_in_the_catalogue() -> None:
    known = {definition.type for definition in REGISTRY.definitions()}

    assert set(READERS) <= known
