"""Erasure and rectification orchestration (R12, R18, R20, R24, R25).

An erasure starts from a verified erasure request, from ``retention.expired`` once every data
category of the subject expired, or from ``consent.no_basis_remaining``. Then:

1. a legal hold on the subject or tenant defers it (``erasure.deferred``), until released;
2. the subject's data keys are destroyed: every copy of their personal data, on every topic and
   in every read model, becomes unreadable (crypto-shredding);
3. ``erasure.requested`` asks every service to anonymise its read models;
4. each answers with ``erasure.receipt``; with all expected receipts in, ``erasure.completed``
   carries them all; past the deadline without them, ``erasure.overdue``.

All ids are derived from the triggering event, so redeliveries and restarts repeat the same
events and change nothing twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from contracts import EventEnvelope
from contracts.events import erasure
from services.common.clock import add_working_days
from services.common.export import EXPORT_REQUEST_TYPES, send_export_part
from services.common.logging import get_logger
from services.common.publisher import derived_event_id
from services.common.runtime import Runtime
from services.common.store import Document
from services.erasure_propagator.export import export_part
from services.erasure_propagator.metrics import ErasureMetrics
from services.erasure_propagator.settings import ErasureSettings
from services.erasure_propagator.store import ErasureStore

__all__ = ["Orchestrator"]

log = get_logger(__name__)


class Orchestrator:
    def __init__(self, runtime: Runtime, store: ErasureStore, settings: ErasureSettings) -> None:
        self.runtime = runtime
        self.store = store
        self.settings = settings
        self.metrics = ErasureMetrics(runtime.metrics, store, runtime.clock)
        self.wakeup = runtime.wakeup(settings.overdue_check_interval_s)
        """Told each requested erasure's deadline: the deadline check runs then."""

    async def publish(
        self,
        data: object,
        *,
        tenant_id: str,
        subject_id: str,
        cause: EventEnvelope | None,
        event_id: str,
        correlation_id: str,
        pii: object | None = None,
    ) -> None:
        await self.runtime.publisher.publish(
            data,  # type: ignore[arg-type]
            pii=pii,  # type: ignore[arg-type]
            tenant_id=tenant_id,
            subject_id=subject_id,
            correlation_id=correlation_id,
            causation_id=cause.id if cause else None,
            event_id=event_id,
        )

    # -- handlers ---------------------------------------------------------------------------
    async def on_event(self, envelope: EventEnvelope) -> None:
        """The read models first (:meth:`ErasureStore.apply`, all a replay runs), then the
        orchestration."""
        self.runtime.registry.decode(envelope)  # validates; unknown versions fail loudly
        await self.store.apply(envelope)
        handler = {
            "privacy.request.verified": self.on_request_verified,
            "retention.expired": self.on_retention_expired,
            "consent.no_basis_remaining": self.on_no_basis,
            "retention.hold_released": self.on_hold_released,
            "erasure.receipt": self.on_erasure_receipt,
            "rectification.receipt": self.on_rectification_receipt,
        }.get(envelope.type)
        if handler is not None:
            await handler(envelope)

    async def on_request_verified(self, envelope: EventEnvelope) -> None:
        request_type = envelope.data["request_type"]
        if request_type in EXPORT_REQUEST_TYPES:
            part = await export_part(self.store, envelope.tenant_id, envelope.subject_id)
            await send_export_part(self.runtime.publisher, envelope, part)
            return
        if request_type not in ("erasure", "rectification"):
            return
        request = await self.store.request(envelope.tenant_id, envelope.data["request_id"])
        if request is None:
            raise LookupError(f"request {envelope.data['request_id']} verified before received")
        if request_type == "erasure":
            trigger = erasure.ErasureTrigger(
                kind="privacy_request", event_id=envelope.id, request_id=request["_id"]
            )
            await self.start_erasure(
                envelope, trigger, request["deadline"], opened_at=request.get("received_at")
            )
        else:
            await self.start_rectification(envelope, request)

    async def on_retention_expired(self, envelope: EventEnvelope) -> None:
        if not envelope.data["all_categories_expired"]:
            return  # some data of the subject is still within its period
        trigger = erasure.ErasureTrigger(
            kind="retention", event_id=envelope.id, category=envelope.data["category"]
        )
        await self.start_erasure(envelope, trigger, self.default_deadline())

    async def on_no_basis(self, envelope: EventEnvelope) -> None:
        trigger = erasure.ErasureTrigger(kind="no_basis_remaining", event_id=envelope.id)
        await self.start_erasure(envelope, trigger, self.default_deadline())

    async def on_hold_released(self, envelope: EventEnvelope) -> None:
        """Run the tenant's deferred erasures that no hold stops any more.

        Every deferred erasure of the tenant is checked, not only those of the release's
        subject: a release counts by its hold id (:meth:`ErasureStore.hold`), whichever key it
        was published under, so its key says nothing reliable about whom the hold covered."""
        for document in await self.store.deferred(envelope.tenant_id):
            if not await self.store.active_holds(document["tenant_id"], document["subject_id"]):
                log.info("hold released; running deferred erasure", erasure_id=document["_id"])
                await self.execute(document)

    async def on_erasure_receipt(self, envelope: EventEnvelope) -> None:
        document = await self.store.add_receipt("erasures", envelope.data["erasure_id"], envelope)
        await self.maybe_complete(document, envelope)

    async def maybe_complete(self, document: Document | None, cause: EventEnvelope | None) -> None:
        """``erasure.completed`` once every expected receipt is in, and not before the erasure
        is recorded as requested: killed between publishing ``erasure.requested`` and
        recording it, erasure-propagator may handle the last receipt before the redelivered
        cause, and :meth:`execute`, re-run from that cause, completes it then."""
        if document is None or document["state"] == "completed":
            return
        if document.get("requested_at") is None:
            return
        if set(document["expected"]) - set(document.get("receipts", {})):
            return
        erasure_id = document["_id"]
        receipts = [
            erasure.Receipt(service=name, actions=r["actions"], at=r["at"], event_id=r["event_id"])
            for name, r in sorted(document["receipts"].items())
        ]
        await self.publish(
            erasure.ErasureCompletedV1(
                erasure_id=erasure_id,
                trigger=erasure.ErasureTrigger.model_validate(document["trigger"]),
                requested_at=document["requested_at"],
                receipts=receipts,
            ),
            tenant_id=document["tenant_id"],
            subject_id=document["subject_id"],
            cause=cause,
            event_id=derived_event_id(erasure_id, "completed"),
            correlation_id=document["correlation_id"],
        )
        completed_at = self.runtime.clock.now()
        await self.store.set_state(erasure_id, "completed", completed_at=completed_at)
        self.metrics.completed(document, completed_at)
        log.info("erasure completed", erasure_id=erasure_id)

    async def on_rectification_receipt(self, envelope: EventEnvelope) -> None:
        rectification_id = envelope.data["rectification_id"]
        document = await self.store.add_receipt("rectifications", rectification_id, envelope)
        if document is None or document["state"] == "completed":
            return
        if set(document["expected"]) - set(document.get("receipts", {})):
            return
        await self.publish(
            erasure.RectificationCompletedV1(
                rectification_id=rectification_id,
                request_id=document["request_id"],
                receipts=[
                    erasure.Receipt(
                        service=name, actions=r["actions"], at=r["at"], event_id=r["event_id"]
                    )
                    for name, r in sorted(document["receipts"].items())
                ],
            ),
            tenant_id=document["tenant_id"],
            subject_id=document["subject_id"],
            cause=envelope,
            event_id=derived_event_id(rectification_id, "completed"),
            correlation_id=document["correlation_id"],
        )
        await self.store.rectifications.update_one(
            {"_id": rectification_id}, {"$set": {"state": "completed"}}
        )

    # -- erasure ----------------------------------------------------------------------------
    def default_deadline(self) -> datetime:
        return add_working_days(
            self.runtime.clock.now(), self.settings.erasure_deadline_working_days
        )

    async def start_erasure(
        self,
        cause: EventEnvelope,
        trigger: erasure.ErasureTrigger,
        deadline: datetime,
        *,
        opened_at: datetime | None = None,
    ) -> None:
        """``opened_at``: when the erasure became due (default: when ``cause`` occurred)."""
        erasure_id = "er_" + uuid.UUID(derived_event_id(cause.id, "erasure")).hex
        document = await self.store.open_erasure(
            erasure_id,
            {
                "tenant_id": cause.tenant_id,
                "subject_id": cause.subject_id,
                "trigger": trigger.model_dump(mode="json"),
                "deadline": deadline,
                "expected": list(self.settings.erasure_receipts),
                "correlation_id": cause.correlation_id,
                "cause_id": cause.id,
                "opened_at": opened_at or cause.occurred_at,
            },
        )
        if document["state"] in ("requested", "completed"):
            if document["state"] == "requested":
                await self.execute(document)  # a redelivery after a crash: finish the job
            return
        holds = await self.store.active_holds(cause.tenant_id, cause.subject_id)
        if holds:
            await self.publish(
                erasure.ErasureDeferredV1(
                    erasure_id=erasure_id,
                    trigger=trigger,
                    hold_ids=[str(h["_id"]) for h in holds],
                ),
                tenant_id=cause.tenant_id,
                subject_id=cause.subject_id,
                cause=cause,
                event_id=derived_event_id(erasure_id, "deferred"),
                correlation_id=cause.correlation_id,
            )
            await self.store.set_state(erasure_id, "deferred")
            log.info("erasure deferred by a legal hold", erasure_id=erasure_id)
            return
        await self.execute(document)

    async def execute(self, document: Document) -> None:
        """Destroy the keys, then ask every service to anonymise. Safe to repeat."""
        tenant_id, subject_id = document["tenant_id"], document["subject_id"]
        destroyed = await self.runtime.keyring.destroy(tenant_id, subject_id)
        requested_at = document.get("requested_at") or self.runtime.clock.now()
        await self.publish(
            erasure.ErasureRequestedV1(
                erasure_id=document["_id"],
                trigger=erasure.ErasureTrigger.model_validate(document["trigger"]),
                deadline=document["deadline"],
                expected_receipts=list(document["expected"]),
            ),
            tenant_id=tenant_id,
            subject_id=subject_id,
            cause=None,
            event_id=derived_event_id(document["_id"], "requested"),
            correlation_id=document["correlation_id"],
        )
        await self.store.set_state(document["_id"], "requested", requested_at=requested_at)
        self.wakeup.notify(document["deadline"])
        log.info("erasure requested", erasure_id=document["_id"], keys_destroyed=destroyed)
        await self.maybe_complete(await self.store.erasure(document["_id"]), None)

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
                    missing_receipts=sorted(
                        set(document["expected"]) - set(document.get("receipts", {}))
                    ),
                ),
                tenant_id=document["tenant_id"],
                subject_id=document["subject_id"],
                cause=None,
                event_id=event_id,
                correlation_id=document["correlation_id"],
            )
            await self.store.erasures.update_one(
                {"_id": document["_id"]}, {"$set": {"overdue_event_id": event_id}}
            )
            log.warning("erasure overdue", erasure_id=document["_id"])
            count += 1
        return count

    # -- rectification ----------------------------------------------------------------------
    async def start_rectification(self, cause: EventEnvelope, request: Document) -> None:
        if await self.store.erased(cause.tenant_id, cause.subject_id):
            # Accepted in the moment between the key destruction and lead-ingest learning of
            # it: the corrections were encrypted under a new key generation. Nothing is
            # rectified for an erased person, and that generation is destroyed as well.
            destroyed = await self.runtime.keyring.destroy(cause.tenant_id, cause.subject_id)
            log.warning(
                "rectification of an erased subject ignored",
                request_id=request["_id"],
                keys_destroyed=destroyed,
            )
            return
        sealed = request.get("sealed")
        corrections = {}
        if sealed:
            plain = await self.runtime.cipher.open_sealed(request, sealed)
            corrections = dict((plain or {}).get("corrections", {}))
        if not corrections:
            log.warning("rectification without readable corrections", request_id=request["_id"])
            return
        rectification_id = "rect_" + uuid.UUID(derived_event_id(cause.id, "rectification")).hex
        expected = list(self.settings.rectification_receipts)
        await self.store.open_rectification(
            rectification_id,
            {
                "tenant_id": cause.tenant_id,
                "subject_id": cause.subject_id,
                "request_id": request["_id"],
                "expected": expected,
                "correlation_id": cause.correlation_id,
            },
        )
        await self.publish(
            erasure.LeadRectifiedV1(
                rectification_id=rectification_id,
                request_id=request["_id"],
                fields=sorted(corrections),
                expected_receipts=expected,
            ),
            pii=erasure.RectifiedContactV1.model_validate(corrections),
            tenant_id=cause.tenant_id,
            subject_id=cause.subject_id,
            cause=cause,
            event_id=derived_event_id(rectification_id, "rectified"),
            correlation_id=cause.correlation_id,
        )
