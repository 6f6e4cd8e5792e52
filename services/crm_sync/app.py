"""Composition of the crm-sync service."""

from __future__ import annotations

from fastapi import APIRouter

from contracts.topics import CONSENT_EVENTS, ERASURE_EVENTS, LEAD_EVENTS, PRIVACY_EVENTS
from services.common.consent import CONSENT_EVENT_TYPES
from services.common.consumer import Subscription, subscribe_all
from services.common.purposes import TenantPurposes
from services.common.runtime import Runtime, ServiceSpec
from services.common.tenants import TenantDirectory
from services.common.wakeup import run_when_due
from services.crm_sync.connections import TenantConnections
from services.crm_sync.dispatcher import Dispatcher
from services.crm_sync.domain import LEAD_EVENTS_HANDLED
from services.crm_sync.handlers import CrmSyncHandlers
from services.crm_sync.recipients import announce_changes, build_router
from services.crm_sync.settings import CrmSettings
from services.crm_sync.store import CrmStore

__all__ = ["SERVICE_NAME", "SETTINGS_CLASS", "SUBSCRIPTIONS", "build_spec"]

SERVICE_NAME = "crm-sync"
SETTINGS_CLASS = CrmSettings
SUBSCRIPTIONS: tuple[Subscription[CrmSyncHandlers], ...] = (
    Subscription(
        "crm-sync.leads",
        (LEAD_EVENTS,),
        event_types=LEAD_EVENTS_HANDLED,
        handle_batch=CrmSyncHandlers.on_events,
    ),
    Subscription(
        "crm-sync.consent",
        (CONSENT_EVENTS,),
        event_types=CONSENT_EVENT_TYPES,
        handle_batch=CrmSyncHandlers.on_events,
    ),
    Subscription(
        "crm-sync.erasure",
        (ERASURE_EVENTS,),
        event_types=frozenset({"erasure.requested"}),
        handle_batch=CrmSyncHandlers.on_events,
    ),
    Subscription(
        "crm-sync.privacy",
        (PRIVACY_EVENTS,),
        event_types=frozenset({"privacy.request.verified"}),
        handle_batch=CrmSyncHandlers.on_events,
    ),
)


def build_spec(settings: CrmSettings) -> ServiceSpec:
    connections = TenantConnections(settings.config_dir)

    def register(runtime: Runtime) -> None:
        store = CrmStore(runtime.db)
        dispatcher = Dispatcher(
            runtime, store, connections, TenantPurposes(settings.config_dir), settings
        )
        handlers = CrmSyncHandlers(runtime, store, connections, dispatcher)
        runtime.state.update(crm_store=store, dispatcher=dispatcher)
        subscribe_all(
            runtime, settings, service=SERVICE_NAME, subscriptions=SUBSCRIPTIONS, handlers=handlers
        )

    async def on_startup(runtime: Runtime) -> None:
        store: CrmStore = runtime.state["crm_store"]
        await store.ensure_indexes()

    async def dispatch_forever(runtime: Runtime) -> None:
        """Runs when an entry is due or a handler queued one; nothing polls the outbox."""
        dispatcher: Dispatcher = runtime.state["dispatcher"]
        try:
            await run_when_due("CRM dispatch round", dispatcher.run_due, dispatcher.wakeup)
        finally:
            await dispatcher.aclose()

    async def watch_recipients(runtime: Runtime) -> None:
        """Announces CRM connections added, changed or removed in the tenants' configuration,
        every ``recipients_check_interval_s``."""
        store: CrmStore = runtime.state["crm_store"]

        async def check() -> None:
            await announce_changes(runtime, store, connections)

        wakeup = runtime.wakeup(settings.recipients_check_interval_s)
        await run_when_due("recipient check", check, wakeup)

    def router(runtime: Runtime) -> APIRouter:
        return build_router(runtime, connections, TenantDirectory(settings.config_dir))

    return ServiceSpec(
        name=SERVICE_NAME,
        title="Leadtrail crm-sync API",
        register=register,
        on_startup=on_startup,
        routers=[router],
        background=[dispatch_forever, watch_recipients],
    )
