"""crm-sync's event handler: keep an encrypted copy of each lead and queue CRM operations.

A batch is folded into the read models (:mod:`.domain`, through the batch pipeline); then the
outbox entries the batch may queue for are read at once, each event is reacted to in order
(queue pushes and deletes, open the waits of erasures and rectifications, send export parts),
and the queued operations are written with one bulk write. The handler never calls a CRM: the
:class:`~services.crm_sync.dispatcher.Dispatcher` carries out the outbox with retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from contracts import EventEnvelope
from contracts.events import consent
from services.common.consumer import redrive_headers
from services.common.export_package import EXPORT_REQUEST_TYPES, send_export_part
from services.common.pipeline import Applied
from services.common.runtime import Runtime
from services.crm_sync.connections import CrmConnection, TenantConnections
from services.crm_sync.dispatcher import Dispatcher
from services.crm_sync.domain import LEADS, UPDATES, lead_ref, subject_ref
from services.crm_sync.export_part import export_part
from services.crm_sync.store import CrmStore, OutboxBatch, Wait, outbox_id

__all__ = ["CrmSyncHandlers"]

CRM_SYNC = "crm_sync"
"""The purpose that allows pushing a lead to the tenant's CRMs."""


def withdrawn_purposes(envelope: EventEnvelope) -> list[str]:
    """The purposes a consent event takes away: a withdrawal's, or an objection's."""
    if envelope.type == "consent.withdrawn":
        return [str(envelope.data["purpose"])]
    if envelope.type == "objection.recorded":
        return [str(p) for p in envelope.data["purposes"]]
    return []


def lead_ids(applied: Applied) -> list[str]:
    """The subject's leads as the batch left them (its leads list), else the lead an event
    names."""
    envelope = applied.event.envelope
    subject = applied.after.get(subject_ref(envelope.tenant_id, envelope.subject_id))
    if subject is not None:
        return list(subject.get("lead_ids", []))
    return [ref.id for ref in applied.after if ref.collection == LEADS]


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

    async def on_events(self, envelopes: Sequence[EventEnvelope]) -> None:
        """Fold the batch, read the outbox entries it may touch, react to each event in order,
        queue everything with one write; then the receipts that wait for nothing more."""
        events = [self.runtime.registry.decode(envelope) for envelope in envelopes]
        for event in events:
            if event.envelope.type == "erasure.requested":
                erased = event.envelope
                self.runtime.keyring.forget_cached(erased.tenant_id, erased.subject_id)
        folded = await self.store.folder.fold(events)
        outbox = await self.store.outbox_batch(
            outbox_id(lead_id, connection.id)
            for applied in folded
            for lead_id in lead_ids(applied)
            for connection in self.connections.for_tenant(
                applied.event.envelope.tenant_id
            ).connections
        )
        waits: list[Wait] = []
        for applied in folded:
            waits += self.react(applied, outbox)
        await self.send_export_parts(folded)
        # The waits before the entries that answer them: the dispatcher may run an entry the
        # moment it is written, and its answer goes to the wait.
        opened = await self.store.open_waits(waits)
        if await outbox.flush():
            self.dispatcher.wakeup.notify()
        for wait in waits:
            if wait.wait_id not in opened or not wait.pending:
                # Waiting for nothing, or recorded before (a redelivery: the dispatcher may
                # have answered everything already, and been killed before the receipt).
                await self.dispatcher.maybe_receipt(wait.wait_id)

    def react(self, applied: Applied, outbox: OutboxBatch) -> list[Wait]:
        """Queue what the event calls for; returns the waits it opens."""
        envelope, data = applied.event.envelope, applied.event.data
        if envelope.type == "lead.qualified":
            self.push(envelope, str(envelope.data["lead_id"]), outbox)
        elif envelope.type in UPDATES:
            lead_id = str(envelope.data["lead_id"])
            lead = applied.after.get(lead_ref(lead_id))
            if lead is not None and lead.get("qualified"):
                self.push(envelope, lead_id, outbox)  # keep the CRM record current
        elif envelope.type == "lead.rectified":
            return [self.rectified(applied, outbox)]
        elif envelope.type == "erasure.requested":
            return [self.erased(applied, outbox)]
        elif isinstance(data, consent.RestrictionLiftedV1) or (
            isinstance(data, consent.ConsentGrantedV1) and data.purpose == CRM_SYNC
        ):
            # Pushing may be allowed again: retry the subject's qualified leads.
            for lead_id in lead_ids(applied):
                lead = applied.after.get(lead_ref(lead_id))
                if lead is not None and lead.get("qualified"):
                    self.push(envelope, lead_id, outbox)
        elif CRM_SYNC in withdrawn_purposes(envelope):
            self.withdraw(applied, outbox)
        return []

    def push(
        self, cause: EventEnvelope, lead_id: str, outbox: OutboxBatch, wait_id: str | None = None
    ) -> None:
        """Queue an upsert of the lead to every CRM connection of its tenant."""
        for connection in self.targets(cause.tenant_id):
            self.queue(cause, lead_id, connection.id, outbox, wait_id=wait_id)

    def queue(
        self,
        cause: EventEnvelope,
        lead_id: str,
        connection_id: str,
        outbox: OutboxBatch,
        *,
        operation: Literal["upsert", "delete"] = "upsert",
        erasure_id: str | None = None,
        wait_id: str | None = None,
    ) -> None:
        outbox.enqueue(
            tenant_id=cause.tenant_id,
            subject_id=cause.subject_id,
            lead_id=lead_id,
            connection_id=connection_id,
            operation=operation,
            cause=cause,
            now=self.runtime.clock.now(),
            erasure_id=erasure_id,
            wait_id=wait_id,
        )

    def rectified(self, applied: Applied, outbox: OutboxBatch) -> Wait:
        """Push the corrected details to every CRM that holds a record of the subject; the
        receipt waits for each of them (R24)."""
        envelope = applied.event.envelope
        wait_id = f"rectification:{envelope.data['rectification_id']}"
        pending = [
            (lead_id, connection.id)
            for lead_id in lead_ids(applied)
            for connection in self.targets(envelope.tenant_id)
            if outbox.record_of(lead_id, connection.id) is not None
            and not outbox.erasing(lead_id, connection.id)  # erasure wins
        ]
        for lead_id, connection_id in pending:
            self.queue(envelope, lead_id, connection_id, outbox, wait_id=wait_id)
        return Wait(wait_id, "rectification", envelope, [outbox_id(*p) for p in pending])

    def withdraw(self, applied: Applied, outbox: OutboxBatch) -> None:
        """Consent to ``crm_sync`` withdrawn, or an objection to it: queue the deletion of each
        CRM record of the subject (R11, R12). The dispatcher asks the shared decision before
        deleting, so a purpose that keeps another basis (or a new consent meanwhile) keeps
        the record; an erasure's delete already queued is left alone."""
        cause = applied.event.envelope
        for lead_id in lead_ids(applied):
            for connection in self.connections.for_tenant(cause.tenant_id).connections:
                if outbox.record_of(lead_id, connection.id) is None:
                    continue  # never delivered there (a pending push asks the decision itself)
                self.queue(cause, lead_id, connection.id, outbox, operation="delete")

    def erased(self, applied: Applied, outbox: OutboxBatch) -> Wait:
        """Delete every lead of the subject in every CRM; the receipt waits for each (R25)."""
        envelope = applied.event.envelope
        erasure_id = str(envelope.data["erasure_id"])
        wait_id = f"erasure:{erasure_id}"
        leads = lead_ids(applied)
        connections = self.targets(envelope.tenant_id)
        pending = [outbox_id(lead_id, c.id) for lead_id in leads for c in connections]
        for lead_id in leads:
            for connection in connections:
                self.queue(
                    envelope,
                    lead_id,
                    connection.id,
                    outbox,
                    operation="delete",
                    erasure_id=erasure_id,
                    wait_id=wait_id,
                )
        return Wait(wait_id, "erasure", envelope, pending)

    async def send_export_parts(self, folded: Sequence[Applied]) -> None:
        """Each verified access or portability request: send crm-sync's part (the
        recipients)."""
        for applied in folded:
            envelope = applied.event.envelope
            if (
                envelope.type == "privacy.request.verified"
                and envelope.data["request_type"] in EXPORT_REQUEST_TYPES
            ):
                await self.send_export_part(envelope)

    async def send_export_part(self, envelope: EventEnvelope) -> None:
        part = await export_part(
            self.store,
            self.connections.for_tenant(envelope.tenant_id),
            envelope.tenant_id,
            envelope.subject_id,
        )
        await send_export_part(self.runtime.publisher, envelope, part)
