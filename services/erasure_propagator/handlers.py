"""erasure-propagator's event handler and deadline check (R12, R18, R20, R24, R25).

An erasure starts from a verified erasure request, from ``retention.expired`` once every data
category of the subject expired, or from ``consent.no_basis_remaining``. Then:

1. a legal hold on the subject or tenant defers it (``erasure.deferred``), until released;
2. the subject's data keys are destroyed: every copy of their personal data, on every topic and
   in every read model, becomes unreadable (crypto-shredding);
3. ``erasure.requested`` asks every service to anonymise its read models;
4. each answers with ``erasure.receipt``; with all expected receipts in, ``erasure.completed``
   carries them all; past the deadline without them, ``erasure.overdue``.

A batch is folded first (:mod:`.domain` decides every state, through the batch pipeline), then
each event's documents are acted on: the keys of every subject whose erasure the batch
requested are destroyed in one go, and the events are published in the batch's order. An event
acts on what it changed (``_applied`` holds its id), so a redelivery, after a crash between the
write and the publishing, acts again: destroying is idempotent and every event id is derived
from the erasure's, so nothing happens twice. A batch that deferred an erasure or released a
hold then reads again for deferred erasures no hold covers (:meth:`ErasureHandlers.
recheck_deferred`): another replica may have folded the other half at the same time.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel

from contracts import EventEnvelope
from contracts.events import erasure, privacy, retention
from services.common.export_package import EXPORT_REQUEST_TYPES, send_export_part
from services.common.logging import get_logger
from services.common.pipeline import Applied, BatchFolder
from services.common.publisher import derived_event_id
from services.common.runtime import Runtime
from services.common.store import Document
from services.erasure_propagator.domain import (
    ERASURES,
    RECTIFICATIONS,
    ErasureModel,
    covering_holds,
    decided_by,
    missing_receipts,
    receipts_of,
)
from services.erasure_propagator.export_part import export_part
from services.erasure_propagator.metrics import ErasureMetrics
from services.erasure_propagator.settings import ErasureSettings
from services.erasure_propagator.store import ErasureStore

__all__ = ["ErasureHandlers"]

log = get_logger(__name__)


class ErasureHandlers:
    def __init__(self, runtime: Runtime, store: ErasureStore, settings: ErasureSettings) -> None:
        self.runtime = runtime
        self.store = store
        self.settings = settings
        self.model = ErasureModel(
            expected_receipts=settings.erasure_receipts,
            deadline_working_days=settings.erasure_deadline_working_days,
        )
        self.folder = BatchFolder(runtime.db, self.model)
        self.metrics = ErasureMetrics(runtime.metrics, store, runtime.clock)
        self.wakeup = runtime.wakeup(settings.overdue_check_interval_s)
        """Told each requested erasure's deadline: the deadline check runs then."""

    async def publish(
        self, data: BaseModel, document: Document, what: str, cause: EventEnvelope | None = None
    ) -> None:
        """Publish ``data`` for the erasure or rectification ``document``, with an id derived
        from the document's (the same on every repetition)."""
        await self.runtime.publisher.publish(
            data,
            tenant_id=document["tenant_id"],
            subject_id=document["subject_id"],
            correlation_id=document["correlation_id"],
            causation_id=cause.id if cause else None,
            event_id=derived_event_id(document["_id"], what),
        )

    # -- the batch --------------------------------------------------------------------------
    async def on_events(self, envelopes: Sequence[EventEnvelope]) -> None:
        """Fold the batch (with the holds and deferred erasures it needs, read by query),
        destroy the keys of the erasures it requested, then act on each event in order."""
        events = [self.runtime.registry.decode(envelope) for envelope in envelopes]
        seeded = await self.store.seeds(self.model.seeds_needed(events))
        # The open-erasure gauges count again after the fold wrote the new states (a scrape
        # that begins after it counts them) and after the rest, which may request deferred
        # erasures, even when it failed.
        try:
            applied_events = await self.folder.fold(events, seeded=seeded)
            self.metrics.invalidate()
            await self.act_on(applied_events)
        finally:
            self.metrics.invalidate()

    async def act_on(self, applied_events: list[Applied]) -> None:
        """Destroy the keys of the erasures a folded batch requested, then act on each event."""
        decided = [
            document
            for applied in applied_events
            for document in self.decided(applied, ERASURES, "requested")
        ]
        rechecked = await self.recheck_deferred(applied_events, {d["_id"] for d in decided})
        requested = {(d["tenant_id"], d["subject_id"]) for d in [*decided, *rechecked]}
        destroyed = await self.runtime.keyring.destroy_all(sorted(requested))
        if requested:
            log.info("data keys destroyed", subjects=len(requested), keys=destroyed)
        for applied in applied_events:
            await self.react(applied)
        for document in rechecked:
            await self.requested(document)

    async def recheck_deferred(
        self, applied_events: Sequence[Applied], decided: set[str]
    ) -> list[Document]:
        """After a batch that deferred an erasure or released a hold: the tenants' deferred
        erasures that no active hold covers any more, requested now.

        With several replicas, a release and a deferral under that hold can be folded at the
        same time, each reading before the other wrote: the release finds no deferral to
        request, the deferral saw the hold active. Both sides read again after writing, so
        whichever reads second sees the other's write (the store orders them) and requests
        the erasure; the write is conditional on the version read, so only one does. The
        requested erasure names an event of this batch (``decided_by``): a redelivery of the
        batch finds it here again and acts on it again (keys, ``erasure.requested``: the same
        ids). Two reads, only in batches with a deferral or a release."""
        first_event: dict[str, EventEnvelope] = {}
        for applied in applied_events:
            envelope = applied.event.envelope
            if isinstance(applied.event.data, retention.RetentionHoldReleasedV1) or self.decided(
                applied, ERASURES, "deferred"
            ):
                first_event.setdefault(envelope.tenant_id, envelope)
        if not first_event:
            return []
        batch_ids = [applied.event.envelope.id for applied in applied_events]
        erasures, holds = await self.store.recheck_reads(sorted(first_event), batch_ids)
        requested = []
        for document in erasures:
            if document["_id"] in decided:
                continue  # requested by the fold itself: already acted on
            if document["state"] == "requested":
                requested.append(document)  # by a previous attempt at this batch
                continue
            if covering_holds(holds, document["tenant_id"], document["subject_id"]):
                continue
            cause = first_event[document["tenant_id"]]
            moved = await self.store.request_deferred(document, cause.occurred_at, cause.id)
            if moved is not None:
                log.info("deferred erasure no longer held: requested", erasure_id=moved["_id"])
                requested.append(moved)
        return requested

    @staticmethod
    def decided(applied: Applied, collection: str, state: str) -> list[Document]:
        """The documents of ``collection`` that ``applied``'s event brought to ``state``."""
        event_id = applied.event.envelope.id
        return [
            document
            for ref, document in sorted(applied.after.items())
            if ref.collection == collection
            and document is not None
            and decided_by(document, event_id, state)
        ]

    async def react(self, applied: Applied) -> None:
        envelope, data = applied.event.envelope, applied.event.data
        if isinstance(data, privacy.PrivacyRequestVerifiedV2):
            if data.request_type in EXPORT_REQUEST_TYPES:
                part = await export_part(self.store, envelope.tenant_id, envelope.subject_id)
                await send_export_part(self.runtime.publisher, envelope, part)
            elif data.request_type == "rectification":
                await self.start_rectification(envelope, data.request_id)
        for document in self.decided(applied, ERASURES, "deferred"):
            await self.deferred(document, envelope)
        for document in self.decided(applied, ERASURES, "requested"):
            await self.requested(document)
        for document in self.decided(applied, ERASURES, "completed"):
            await self.completed(document, envelope)
        for document in self.decided(applied, RECTIFICATIONS, "completed"):
            await self.rectification_completed(document, envelope)

    # -- erasure ----------------------------------------------------------------------------
    async def deferred(self, document: Document, cause: EventEnvelope) -> None:
        await self.publish(
            erasure.ErasureDeferredV1(
                erasure_id=document["_id"],
                trigger=erasure.ErasureTrigger.model_validate(document["trigger"]),
                hold_ids=list(document["hold_ids"]),
            ),
            document,
            "deferred",
            cause,
        )
        log.info("erasure deferred by a legal hold", erasure_id=document["_id"])

    async def requested(self, document: Document) -> None:
        """The keys are destroyed (:meth:`on_events`); every service is asked to anonymise."""
        await self.publish(
            erasure.ErasureRequestedV1(
                erasure_id=document["_id"],
                trigger=erasure.ErasureTrigger.model_validate(document["trigger"]),
                deadline=document["deadline"],
                expected_receipts=list(document["expected"]),
            ),
            document,
            "requested",
        )
        self.wakeup.notify(document["deadline"])
        log.info("erasure requested", erasure_id=document["_id"])

    async def completed(self, document: Document, cause: EventEnvelope) -> None:
        await self.publish(
            erasure.ErasureCompletedV1(
                erasure_id=document["_id"],
                trigger=erasure.ErasureTrigger.model_validate(document["trigger"]),
                requested_at=document["requested_at"],
                receipts=receipts_of(document),
            ),
            document,
            "completed",
            cause,
        )
        self.metrics.completed(document, document["completed_at"])
        log.info("erasure completed", erasure_id=document["_id"])

    async def run_due(self) -> datetime | None:
        """One round of the deadline loop (:func:`~services.common.wakeup.run_when_due`):
        report what is overdue, then return the next deadline, read once."""
        await self.check_overdue()
        return await self.store.next_deadline(self.runtime.clock.now())

    async def check_overdue(self) -> int:
        count = 0
        for document in await self.store.overdue(self.runtime.clock.now()):
            event_id = derived_event_id(document["_id"], "overdue")
            await self.publish(
                erasure.ErasureOverdueV1(
                    erasure_id=document["_id"],
                    deadline=document["deadline"],
                    missing_receipts=sorted(missing_receipts(document)),
                ),
                document,
                "overdue",
            )
            await self.store.mark_overdue(document["_id"], event_id)
            log.warning("erasure overdue", erasure_id=document["_id"])
            count += 1
        return count

    # -- rectification ----------------------------------------------------------------------
    async def start_rectification(self, cause: EventEnvelope, request_id: str) -> None:
        request = await self.store.request(cause.tenant_id, request_id)
        if request is None:
            raise LookupError(f"request {request_id} verified before received")
        if await self.store.erased(cause.tenant_id, cause.subject_id):
            # Accepted in the moment between the key destruction and lead-ingest learning of
            # it: the corrections were encrypted under a new key generation. Nothing is
            # rectified for an erased person, and that generation is destroyed as well.
            destroyed = await self.runtime.keyring.destroy(cause.tenant_id, cause.subject_id)
            log.warning(
                "rectification of an erased subject ignored",
                request_id=request_id,
                keys_destroyed=destroyed,
            )
            return
        sealed = request.get("sealed")
        corrections = {}
        if sealed:
            plain = await self.runtime.cipher.open_sealed(request, sealed)
            corrections = dict((plain or {}).get("corrections", {}))
        if not corrections:
            log.warning("rectification without readable corrections", request_id=request_id)
            return
        rectification_id = "rect_" + uuid.UUID(derived_event_id(cause.id, "rectification")).hex
        expected = list(self.settings.rectification_receipts)
        await self.store.open_rectification(
            rectification_id,
            {
                "tenant_id": cause.tenant_id,
                "subject_id": cause.subject_id,
                "request_id": request_id,
                "expected": expected,
                "correlation_id": cause.correlation_id,
            },
        )
        await self.runtime.publisher.publish(
            erasure.LeadRectifiedV1(
                rectification_id=rectification_id,
                request_id=request_id,
                fields=sorted(corrections),
                expected_receipts=expected,
            ),
            pii=erasure.RectifiedContactV1.model_validate(corrections),
            tenant_id=cause.tenant_id,
            subject_id=cause.subject_id,
            correlation_id=cause.correlation_id,
            causation_id=cause.id,
            event_id=derived_event_id(rectification_id, "rectified"),
        )

    async def rectification_completed(self, document: Document, cause: EventEnvelope) -> None:
        await self.publish(
            erasure.RectificationCompletedV1(
                rectification_id=document["_id"],
                request_id=document["request_id"],
                receipts=receipts_of(document),
            ),
            document,
            "completed",
            cause,
        )
