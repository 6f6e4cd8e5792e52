"""crm-sync's event handlers: keep an encrypted copy of each lead and queue CRM operations.

The handlers only write crm-sync's own collections (fast, so the partition keeps moving); the
:class:`~services.crm_sync.dispatcher.Dispatcher` carries out the queued CRM calls with retries.
Each handler applies the event to the read models first (:meth:`CrmStore.apply_event`, all that
``leadtrail replay`` runs), then queues the CRM work.
"""

from __future__ import annotations

from contracts import EventEnvelope
from services.common.consumer import redrive_headers
from services.common.export import EXPORT_REQUEST_TYPES, send_export_part
from services.common.runtime import Runtime
from services.crm_sync.connections import CrmConnection, TenantConnections
from services.crm_sync.dispatcher import Dispatcher
from services.crm_sync.export import export_part
from services.crm_sync.store import CrmStore, outbox_id

__all__ = ["CrmSyncHandlers"]

UPDATES = {"lead.interaction_recorded", "lead.scored", "lead.score_reviewed"}
CRM_SYNC = "crm_sync"
"""The purpose that allows pushing a lead to the tenant's CRMs."""


def withdrawn_purposes(envelope: EventEnvelope) -> list[str]:
    """The purposes a consent event takes away: a withdrawal's, or an objection's."""
    if envelope.type == "consent.withdrawn":
        return [str(envelope.data["purpose"])]
    if envelope.type == "objection.recorded":
        return [str(p) for p in envelope.data["purposes"]]
    return []


class CrmSyncHandlers:
    def __init__(
        self,
        runtime: Runtime,
        store: CrmStore,
        connections: TenantConnections,
        dispatcher: Dispatcher,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.connections = connections
        self.dispatcher = dispatcher

    def targets(self, tenant_id: str) -> list[CrmConnection]:
        """The tenant's CRM connections to queue work for: all of them, or, for an event that
        ``leadtrail dlq redrive`` sent again after a CRM call failed, only the connection whose
        call failed (the others succeeded and must not be called twice)."""
        connections = self.connections.for_tenant(tenant_id).connections
        redrive = redrive_headers()
        if redrive is None or "connection_id" not in redrive:
            return list(connections)
        return [c for c in connections if c.id == redrive["connection_id"]]

    async def push(
        self, cause: EventEnvelope, lead_id: str, wait_id: str | None = None
    ) -> list[str]:
        """Queue an upsert of the lead to every CRM connection of its tenant."""
        queued = []
        for connection in self.targets(cause.tenant_id):
            await self.store.enqueue(
                tenant_id=cause.tenant_id,
                subject_id=cause.subject_id,
                lead_id=lead_id,
                connection_id=connection.id,
                operation="upsert",
                cause=cause,
                now=self.runtime.clock.now(),
                wait_id=wait_id,
            )
            queued.append(outbox_id(lead_id, connection.id))
        if queued:
            self.dispatcher.wakeup.notify()
        return queued

    async def on_lead_event(self, envelope: EventEnvelope) -> None:
        self.runtime.registry.decode(envelope)  # validates; unknown versions fail loudly
        await self.store.apply_event(envelope)
        lead_id = str(envelope.data.get("lead_id", ""))
        if envelope.type == "lead.qualified":
            await self.push(envelope, lead_id)
        elif envelope.type in UPDATES:
            lead = await self.store.lead(envelope.tenant_id, lead_id)
            if lead is not None and lead.get("qualified"):
                await self.push(envelope, lead_id)  # keep the CRM record current
        elif envelope.type == "lead.rectified":
            await self.on_rectified(envelope)

    async def on_rectified(self, envelope: EventEnvelope) -> None:
        wait_id = f"rectification:{envelope.data['rectification_id']}"
        lead_ids = await self.store.lead_ids(envelope.tenant_id, envelope.subject_id)
        pending = [
            outbox_id(lead_id, connection.id)
            for lead_id in lead_ids
            for connection in self.targets(envelope.tenant_id)
            if await self.store.record_of(lead_id, connection.id) is not None
            and not await self.store.deleting(lead_id, connection.id)  # erasure wins
        ]
        await self.store.open_wait(wait_id, "rectification", envelope, pending, [])
        for queued in pending:
            lead_id = queued.rsplit(":", 1)[0]
            await self.push_one(envelope, lead_id, queued.rsplit(":", 1)[1], wait_id)
        await self.dispatcher.maybe_receipt(wait_id)

    async def push_one(
        self, cause: EventEnvelope, lead_id: str, connection_id: str, wait_id: str
    ) -> None:
        await self.store.enqueue(
            tenant_id=cause.tenant_id,
            subject_id=cause.subject_id,
            lead_id=lead_id,
            connection_id=connection_id,
            operation="upsert",
            cause=cause,
            now=self.runtime.clock.now(),
            wait_id=wait_id,
        )
        self.dispatcher.wakeup.notify()

    async def on_consent_event(self, envelope: EventEnvelope) -> None:
        await self.store.apply_event(envelope)
        regained = envelope.type == "restriction.lifted" or (
            envelope.type == "consent.granted" and envelope.data.get("purpose") == "crm_sync"
        )
        if regained:
            # Pushing may be allowed again: retry the subject's qualified leads.
            for lead_id in await self.store.lead_ids(envelope.tenant_id, envelope.subject_id):
                lead = await self.store.lead(envelope.tenant_id, lead_id)
                if lead is not None and lead.get("qualified"):
                    await self.push(envelope, lead_id)
        elif CRM_SYNC in withdrawn_purposes(envelope):
            await self.withdraw(envelope)

    async def withdraw(self, cause: EventEnvelope) -> None:
        """Consent to ``crm_sync`` withdrawn, or an objection to it: queue the deletion of each
        CRM record of the subject (R11, R12). The dispatcher asks the shared decision before
        deleting, so a purpose that keeps another basis (or a new consent meanwhile) keeps
        the record; an erasure's delete already queued is left alone."""
        tenant_id = cause.tenant_id
        queued = False
        for lead_id in await self.store.lead_ids(tenant_id, cause.subject_id):
            for connection in self.connections.for_tenant(tenant_id).connections:
                if await self.store.record_of(lead_id, connection.id) is None:
                    continue  # never delivered there (a pending push asks the decision itself)
                if await self.store.deleting(lead_id, connection.id):
                    continue
                await self.store.enqueue(
                    tenant_id=tenant_id,
                    subject_id=cause.subject_id,
                    lead_id=lead_id,
                    connection_id=connection.id,
                    operation="delete",
                    cause=cause,
                    now=self.runtime.clock.now(),
                )
                queued = True
        if queued:
            self.dispatcher.wakeup.notify()  # else it waits up to the dispatch interval

    async def on_erasure_event(self, envelope: EventEnvelope) -> None:
        if envelope.type != "erasure.requested":
            return
        tenant_id, subject_id = envelope.tenant_id, envelope.subject_id
        self.runtime.keyring.forget_cached(tenant_id, subject_id)
        erasure_id = envelope.data["erasure_id"]
        wait_id = f"erasure:{erasure_id}"
        lead_ids = await self.store.lead_ids(tenant_id, subject_id)
        connections = self.targets(tenant_id)
        pending = [
            outbox_id(lead_id, connection.id) for lead_id in lead_ids for connection in connections
        ]
        await self.store.open_wait(wait_id, "erasure", envelope, pending, [])
        await self.store.apply_event(envelope)
        for lead_id in lead_ids:
            for connection in connections:
                await self.store.enqueue(
                    tenant_id=tenant_id,
                    subject_id=subject_id,
                    lead_id=lead_id,
                    connection_id=connection.id,
                    operation="delete",
                    cause=envelope,
                    now=self.runtime.clock.now(),
                    erasure_id=erasure_id,
                    wait_id=wait_id,
                )
        if lead_ids and connections:
            self.dispatcher.wakeup.notify()
        await self.dispatcher.maybe_receipt(wait_id)

    async def on_privacy_event(self, envelope: EventEnvelope) -> None:
        """A verified access or portability request: send crm-sync's part (the recipients)."""
        if envelope.type != "privacy.request.verified":
            return
        self.runtime.registry.decode(envelope)
        if envelope.data["request_type"] not in EXPORT_REQUEST_TYPES:
            return
        part = await export_part(
            self.store,
            self.connections.for_tenant(envelope.tenant_id),
            envelope.tenant_id,
            envelope.subject_id,
        )
        await send_export_part(self.runtime.publisher, envelope, part)
