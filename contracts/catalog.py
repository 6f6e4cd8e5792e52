"""The catalogue: every published event type and version, in one registry.

Adding a version: register it here beside the old one, add an upcaster from the previous
version, run ``leadtrail contracts generate`` and commit the new schema and example files.
Never edit a published model: the contract test fails when a checked-in schema changes.
"""

from __future__ import annotations

from contracts.events.lead import LeadCapturedV1, LeadContactV1
from contracts.registry import EventDefinition, EventRegistry
from contracts.topics import LEAD_EVENTS

__all__ = ["build_registry"]


def build_registry() -> EventRegistry:
    registry = EventRegistry()
    registry.register(
        EventDefinition(
            type="lead.captured",
            version=1,
            data=LeadCapturedV1,
            pii=LeadContactV1,
            topic=LEAD_EVENTS.name,
            description="A lead was accepted from a web form or a third-party source.",
            producers=("lead-ingest",),
            consumers=("consent-ledger", "retention-scheduler", "crm-sync"),
        )
    )
    return registry
