"""Composition of the crm-sync service: its parts, built once on a runtime."""

from __future__ import annotations

from services.common.declaration import Service
from services.common.http import RateLimiter, TenantGate
from services.common.purposes import TenantPurposes
from services.common.runtime import Runtime
from services.common.tenants import TenantDirectory
from services.common.wakeup import run_when_due
from services.crm_sync.connections import TenantConnections
from services.crm_sync.dispatcher import Dispatcher
from services.crm_sync.handlers import CrmSyncHandlers
from services.crm_sync.recipients import announce_changes, build_router
from services.crm_sync.settings import CrmSettings
from services.crm_sync.store import CrmStore

__all__ = ["build"]


def build(runtime: Runtime, settings: CrmSettings) -> Service[CrmSyncHandlers]:
    connections = TenantConnections(settings.config_dir)
    store = CrmStore(runtime.db)
    dispatcher = Dispatcher(
        runtime, store, connections, TenantPurposes(settings.config_dir), settings
    )

    async def dispatch_forever() -> None:
        """Runs when an entry is due or a handler queued one; nothing polls the outbox."""
        try:
            await run_when_due("CRM dispatch round", dispatcher.run_due, dispatcher.wakeup)
        finally:
            await dispatcher.aclose()

    async def watch_recipients() -> None:
        """Announces CRM connections added, changed or removed in the tenants' configuration,
        every ``recipients_check_interval_s``."""

        async def check() -> None:
            await announce_changes(runtime, store, connections)

        wakeup = runtime.wakeup(settings.recipients_check_interval_s)
        await run_when_due("recipient check", check, wakeup)

    return Service(
        handlers=CrmSyncHandlers(runtime, store, connections, dispatcher),
        routers=[build_router(connections)],
        tenant_gate=TenantGate(TenantDirectory(settings.config_dir), RateLimiter(50.0, 100)),
        startup=[store.ensure_indexes],
        background={"dispatch_forever": dispatch_forever, "watch_recipients": watch_recipients},
    )
