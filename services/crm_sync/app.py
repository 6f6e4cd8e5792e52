"""Composition of the crm-sync service."""

from __future__ import annotations

from contracts.topics import ERASURE_EVENTS, LEAD_EVENTS
from services.common.consumer import subscribe_events
from services.common.runtime import Runtime, ServiceSpec
from services.common.settings import CommonSettings
from services.crm_sync.handlers import CrmSyncHandlers

__all__ = ["SERVICE_NAME", "SETTINGS_CLASS", "build_spec"]

SERVICE_NAME = "crm-sync"
SETTINGS_CLASS = CommonSettings


def build_spec(settings: CommonSettings) -> ServiceSpec:
    def register(runtime: Runtime) -> None:
        subscribe_events(
            runtime.broker,
            settings,
            service=SERVICE_NAME,
            group_id="crm-sync.receipts",
            topics=[LEAD_EVENTS.name, ERASURE_EVENTS.name],
            handler=CrmSyncHandlers(runtime).on_event,
            clock=runtime.clock,
            event_types=["erasure.requested", "lead.rectified"],
        )

    return ServiceSpec(name=SERVICE_NAME, register=register)
