"""Carrying out the outbox: CRM calls with retries, backoff, a circuit breaker, dead letters.

For each due outbox entry (lead, connection):

* ``upsert``: only if the shared consent decision allows ``crm_sync`` for the subject *now*
  (R28, R14); the CRM record id from an earlier push makes it an update of the same record;
* ``delete`` (erasure): the CRM's (GDPR) delete of the recorded id; the erasure's receipt waits
  for the CRM's confirmation (R25).

A transient failure (timeout, 429, 5xx) is retried with exponential backoff and jitter, honouring
``Retry-After``; repeated failures open the connection's circuit so a CRM that is down is not
hammered, and its backlog drains when it is back. A permanent failure (another 4xx) or too many
attempts goes to the dead-letter topic with the full context (``leadtrail dlq redrive`` re-sends
it). Every failure is a ``crm.sync_failed`` event; nothing is dropped silently.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from pymongo import ReturnDocument

from contracts import EventEnvelope
from contracts.dead_letter import DeadLetterV1
from contracts.events import crm
from services.common.consent import ConsentFact, decide, fold
from services.common.dead_letters import b64, send_dead_letter
from services.common.logging import get_logger, message_context
from services.common.purposes import TenantPurposes
from services.common.receipts import send_erasure_receipt, send_rectification_receipt
from services.common.runtime import Runtime
from services.common.store import Document, update_if
from services.crm_sync.adapters.base import CrmAdapter, CrmError, build_adapter
from services.crm_sync.adapters.config import SecretUnavailableError
from services.crm_sync.breaker import CircuitBreaker
from services.crm_sync.connections import CrmConnection, TenantConnections
from services.crm_sync.contact import build_contact, mapped_fields
from services.crm_sync.metrics import CrmMetrics
from services.crm_sync.settings import CrmSettings
from services.crm_sync.store import CrmStore

__all__ = ["SERVICE", "Dispatcher"]

SERVICE = "crm-sync"
log = get_logger(__name__)


class Dispatcher:
    def __init__(
        self,
        runtime: Runtime,
        store: CrmStore,
        connections: TenantConnections,
        purposes: TenantPurposes,
        settings: CrmSettings,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.connections = connections
        self.purposes = purposes
        self.settings = settings
        self.breaker = CircuitBreaker(settings.breaker_threshold, settings.breaker_open_s)
        self.metrics = CrmMetrics(runtime.metrics, self.breaker)
        self._adapters: dict[tuple[str, str, str], CrmAdapter] = {}
        self.wakeup = runtime.wakeup(settings.dispatch_interval_s)
        """Handlers call ``wakeup.notify()`` after queueing work."""
        self._read: dict[str, Document] = {}
        """The leads and subjects of the round's entries (``lead:<id>``, ``subject:<id>``)."""

    async def aclose(self) -> None:
        for adapter in self._adapters.values():
            await adapter.aclose()
        self._adapters.clear()

    def adapter(self, tenant_id: str, connection: CrmConnection) -> CrmAdapter:
        key = (tenant_id, connection.id, connection.fingerprint())
        if key not in self._adapters:
            self._adapters[key] = build_adapter(connection.adapter)
        return self._adapters[key]

    async def run_once(self, limit: int = 100) -> int:
        """Work through the due outbox entries; returns how many CRM calls succeeded."""
        return await self.run_entries(await self.store.due(self.runtime.clock.now(), limit))

    async def run_entries(self, entries: list[Document]) -> int:
        """Carry out due entries read together; returns how many CRM calls succeeded. Their
        leads, subjects and data keys are read first, one round trip each for all of them."""
        await self.prefetch(entries)
        try:
            return sum([await self.run_entry(entry) for entry in entries])
        finally:
            self._read = {}

    async def prefetch(self, entries: list[Document]) -> None:
        lead_ids = sorted({str(entry["lead_id"]) for entry in entries})
        subject_ids = sorted({f"{e['tenant_id']}:{e.get('subject_id')}" for e in entries})
        read: dict[str, Document] = {}
        if lead_ids:
            leads = await self.store.leads.find({"_id": {"$in": lead_ids}}).to_list()
            subjects = await self.store.subjects.find({"_id": {"$in": subject_ids}}).to_list()
            read = {f"lead:{d['_id']}": d for d in leads}
            read |= {f"subject:{d['_id']}": d for d in subjects}
            await self.runtime.keyring.prefetch(
                key_id
                for lead in leads
                for sealed in (lead.get("contact"), *lead.get("rectifications", []))
                if isinstance(sealed, dict)
                for key_id in [_sealed_key(sealed)]
                if key_id is not None
            )
        self._read = read

    async def lead(self, tenant_id: str, lead_id: str) -> Document | None:
        """The lead as read for this round (else read now), if it is the tenant's."""
        lead = self._read.get(f"lead:{lead_id}")
        if lead is None:
            return await self.store.lead(tenant_id, lead_id)
        return lead if lead.get("tenant_id") == tenant_id else None

    async def subject(self, tenant_id: str, subject_id: str) -> Document:
        subject = self._read.get(f"subject:{tenant_id}:{subject_id}")
        if subject is None:
            return await self.store.subject(tenant_id, subject_id)
        return subject if subject.get("tenant_id") == tenant_id else {}

    async def run_due(self, limit: int = 100) -> datetime | None:
        """One round of the background loop (:func:`~services.common.wakeup.run_when_due`):
        work through the due entries, then return when the next one is due: now after a full
        batch or when a handler queued work meanwhile, else the earliest pending entry's time,
        read once (None: nothing pending; the loop sleeps until a handler queues work, or the
        cap)."""
        now = self.runtime.clock.now()
        entries = await self.store.due(now, limit)
        await self.run_entries(entries)
        if len(entries) >= limit or self.wakeup.due_now:
            return now  # more is waiting: no need to read when
        return await self.store.next_attempt()

    async def run_entry(self, entry: Document) -> int:
        """Carry out one due entry read in a batch; 1 if its CRM call succeeded."""
        cause = entry.get("cause") or {}
        with message_context(
            service=SERVICE,
            tenant_id=entry["tenant_id"],
            lead_id=entry["lead_id"],
            correlation_id=cause.get("correlation_id"),
            causation_id=cause.get("id"),
        ):
            # Read again: a handler may have queued another operation since the round began
            # (and every write of the outcome is conditional on the entry staying as read).
            fresh = await self.store.outbox.find_one({"_id": entry["_id"]})
            if fresh is None or not _unchanged(entry, fresh):
                return 0
            return await self.process(fresh)

    async def process(self, entry: Document) -> int:
        now = self.runtime.clock.now()
        tenant_id, connection_id = entry["tenant_id"], entry["connection_id"]
        breaker_key = f"{tenant_id}/{connection_id}"
        connection = self.connections.for_tenant(tenant_id).connection(connection_id)
        if connection is None:
            await self.fail(
                entry, CrmError("connection no longer configured", status=None, transient=False)
            )
            return 0
        kind = self.metrics.kinds[breaker_key] = connection.adapter.kind
        if not self.breaker.allows(breaker_key):
            await update_if(
                self.store.outbox,
                entry["_id"],
                {"state": "pending"},
                {
                    "$set": {
                        "next_attempt_at": now + timedelta(seconds=self.settings.breaker_open_s)
                    }
                },
            )
            return 0
        probe = self.breaker.state(breaker_key) == "half-open"
        try:
            if entry["operation"] == "delete" and entry.get("erasure_id") is not None:
                succeeded = await self.delete(entry, connection)
            else:
                # A push, or a delete queued because no basis for crm_sync remained: both go
                # by the consent decision as it is now (`upsert` deletes when none remains).
                succeeded = await self.upsert(entry, connection)
        except CrmError as error:
            self.breaker.failed(breaker_key)
            await self.fail(entry, error, adapter=kind, probe=probe)
            return 0
        except SecretUnavailableError as error:
            await self.fail(entry, CrmError(str(error), status=None, transient=False), adapter=kind)
            return 0
        self.breaker.succeeded(breaker_key)
        self.metrics.pushed(kind, entry["operation"], "ok" if succeeded else "skipped")
        return 1 if succeeded else 0

    async def upsert(self, entry: Document, connection: CrmConnection) -> bool:
        tenant_id, lead_id = entry["tenant_id"], entry["lead_id"]
        lead = await self.lead(tenant_id, lead_id)
        subject = await self.subject(tenant_id, entry["subject_id"])
        state = fold(ConsentFact.from_document(f) for f in subject.get("facts", []))
        bases = self.purposes.for_tenant(tenant_id).bases()
        decision = decide(state, "crm_sync", bases)
        # Restricted, the record stays (storage only, R14); with no basis left at all for
        # crm_sync (consent withdrawn, an objection) the CRM's copy goes (R11, R12).
        if (
            not decision.allowed
            and entry.get("record_id") is not None
            and not decide(replace(state, restricted=False), "crm_sync", bases).allowed
        ):
            log.info("no basis for crm_sync remains; deleting the CRM record")
            return await self.delete(entry, connection, reason="no_basis")
        if not decision.allowed or lead is None:
            await self.skip(entry, connection, decision.reason)
            log.info("CRM push not allowed now", reason=decision.reason)
            return False
        contact = await build_contact(self.runtime.cipher, lead, connection.field_mapping)
        if contact is None:
            await self.skip(entry, connection, "personal data erased")
            return False
        adapter = self.adapter(tenant_id, connection)
        previous = entry.get("record_id")
        try:
            record_id = await adapter.upsert(contact, previous)
        except CrmError as error:
            if error.status != 404 or previous is None:
                raise
            # Someone deleted the record in the CRM itself: create it again.
            log.warning("CRM record gone; creating it again", record_id=previous)
            previous = None
            record_id = await adapter.upsert(contact, None)
        cause = EventEnvelope.model_validate(entry["cause"])
        await self.publish(
            cause,
            crm.CrmLeadSyncedV1(
                lead_id=lead_id,
                connection_id=connection.id,
                kind=connection.adapter.kind,
                record_id=record_id,
                created=previous is None,
                score=contact.score,
            ),
            f"synced/{connection.id}/{entry.get('attempts', 0)}",
        )
        pull = self.connections.for_tenant(tenant_id).pull
        if pull.enabled:
            fields = mapped_fields(contact, pull.field_mapping)
            await self.publish(
                cause,
                crm.CrmLeadUpsertedV1(
                    lead_id=lead_id,
                    score=contact.score,
                    qualified=contact.qualified,
                    fields=sorted(fields),
                ),
                f"pull/{connection.id}",
                pii=crm.MappedFieldsV1(values=fields),
            )
        await self.progress(
            entry, f"{connection.id} ({connection.adapter.kind}) updated {record_id}"
        )
        # Last, as in `delete`: killed before this, the entry is still pending and the push
        # runs again (same event ids); done first, its events and receipt were never sent.
        # `last_delivered_at` outlives the next queued update (which resets `state` to
        # pending): an access export reports the CRM as a recipient from the first delivery.
        delivered_at = self.runtime.clock.now()
        if not await self.finish(
            entry, state="done", record_id=record_id, last_delivered_at=delivered_at
        ):
            # A handler queued another operation meanwhile (an erasure's delete, say): it runs
            # next, and must find the record this call created or it would delete nothing.
            await self.store.outbox.update_one(
                {"_id": entry["_id"]},
                {"$set": {"record_id": record_id, "last_delivered_at": delivered_at}},
            )
        return True

    async def delete(
        self,
        entry: Document,
        connection: CrmConnection,
        reason: Literal["erasure", "no_basis"] = "erasure",
    ) -> bool:
        """Delete the lead's record in the CRM: for an erasure, or (``no_basis``) because no
        basis for crm_sync remains. Either way ``crm.record_deleted`` is the receipt."""
        record_id = entry.get("record_id")
        cause = EventEnvelope.model_validate(entry["cause"])
        if record_id is not None:
            await self.adapter(entry["tenant_id"], connection).delete(None, record_id)
            await self.publish(
                cause,
                crm.CrmRecordDeletedV2(
                    lead_id=entry["lead_id"],
                    connection_id=connection.id,
                    record_id=record_id,
                    reason=reason,
                    erasure_id=entry.get("erasure_id"),
                    gdpr_delete=connection.adapter.kind == "hubspot"
                    and connection.adapter.gdpr_delete,
                ),
                f"deleted/{connection.id}" + ("" if reason == "erasure" else f"/{record_id}"),
            )
            if self.connections.for_tenant(entry["tenant_id"]).pull.enabled:
                await self.publish(
                    cause,
                    crm.CrmLeadDeletedV1(
                        lead_id=entry["lead_id"], erasure_id=entry.get("erasure_id")
                    ),
                    f"pull-deleted/{connection.id}"
                    + ("" if reason == "erasure" else f"/{record_id}"),
                )
        confirmation = (
            f"{connection.id} ({connection.adapter.kind}) confirmed deleting record {record_id}"
            if record_id is not None
            else f"{connection.id} ({connection.adapter.kind}) held no record"
        )
        # The waiting erasure first, then the entry: killed in between, the entry is still
        # pending and the delete runs again (a gone record counts as deleted); the other way
        # round the erasure waited for this entry forever (found by the e2e kill -9 test).
        await self.progress(entry, confirmation)
        await self.finish(entry, state="done", record_id=None, deleted_record_id=record_id)
        return True

    async def skip(self, entry: Document, connection: CrmConnection, reason: str) -> None:
        """No call made: a waiting erasure or rectification is told so, not left waiting."""
        await self.progress(
            entry, f"{connection.id} ({connection.adapter.kind}) not updated: {reason}"
        )
        await self.finish(entry, state="skipped", reason=reason)

    async def finish(self, entry: Document, *, state: str, **values: Any) -> bool:
        """The entry's operation is over; the waits it was queued for have had their answer.
        False when the entry changed since it was read (another operation was queued)."""
        return await update_if(
            self.store.outbox,
            entry["_id"],
            {"next_attempt_at": entry["next_attempt_at"]},
            {
                "$set": {"state": state, "attempts": 0, "last_error": None, **values},
                "$unset": {"wait_ids": "", "wait_id": ""},
            },
        )

    async def fail(
        self, entry: Document, error: CrmError, *, adapter: str = "unknown", probe: bool = False
    ) -> None:
        """Record a failed CRM call: retry it later, or dead-letter it.

        A transient failure of a ``probe`` (the one call a half-open circuit lets through) says
        the CRM is still down, nothing about this entry, so it never dead-letters the entry:
        otherwise each probe of a long outage would use up an attempt of whichever entry it
        carried, and the backlog would die one entry at a time instead of draining when the
        CRM is back. ``attempts`` still counts every call."""
        attempt = int(entry.get("attempts", 0)) + 1
        now = self.runtime.clock.now()
        retry = error.transient and (probe or attempt < self.settings.max_attempts)
        next_at: datetime | None = None
        if retry:
            # Capped exponent: the failed probes of a long outage count attempts without limit.
            growth = 2 ** min(attempt - 1, 32)
            backoff = min(self.settings.backoff_max_s, self.settings.backoff_base_s * growth)
            delay = max(error.retry_after or 0.0, backoff * random.uniform(0.5, 1.0))  # noqa: S311
            next_at = now + timedelta(seconds=delay)
        cause = EventEnvelope.model_validate(entry["cause"])
        await self.publish(
            cause,
            crm.CrmSyncFailedV1(
                lead_id=entry["lead_id"],
                connection_id=entry["connection_id"],
                operation=entry["operation"],
                attempt=attempt,
                status=error.status,
                error=str(error)[:2000],
                transient=error.transient,
                next_attempt_at=next_at,
                dead_lettered=not retry,
            ),
            f"failed/{entry['connection_id']}/{entry['operation']}/{attempt}/{entry['next_attempt_at']}",
        )
        self.metrics.pushed(adapter, entry["operation"], "retry" if retry else "dead_letter")
        log.warning(
            "CRM call failed",
            connection=entry["connection_id"],
            attempt=attempt,
            status=error.status,
            transient=error.transient,
            retry=retry,
        )
        if not retry:
            await self.dead_letter(entry, cause, error, attempt)
        # The state last: killed before this, the entry is still pending and fails again (the
        # same crm.sync_failed id); `dead` first, the dead letter was never written, and
        # nothing could redrive the push.
        await update_if(
            self.store.outbox,
            entry["_id"],
            {"next_attempt_at": entry["next_attempt_at"]},
            {
                "$set": {
                    "attempts": attempt,
                    "state": "pending" if retry else "dead",
                    "next_attempt_at": next_at or now,
                    "last_error": str(error)[:2000],
                }
            },
        )

    async def dead_letter(
        self, entry: Document, cause: EventEnvelope, error: CrmError, attempts: int
    ) -> None:
        definition = self.runtime.registry.get(cause.type, cause.version)
        letter = DeadLetterV1(
            failed_at=self.runtime.clock.now(),
            service=SERVICE,
            consumer_group=f"crm-sync.outbox/{entry['connection_id']}",
            source_topic=self.runtime.settings.topic(definition.topic),
            source_partition=-1,
            source_offset=-1,
            key_b64=b64(cause.kafka_key()),
            value_b64=b64(cause.model_dump_json().encode()),
            headers={
                **cause.kafka_headers(),
                "connection_id": entry["connection_id"],
                "operation": entry["operation"],
            },
            error_type=f"CrmError({error.status})" if error.status else "CrmError",
            error_message=f"{entry['operation']} on {entry['connection_id']}: {error}"[:4000],
            attempts=attempts,
            event_id=cause.id,
            event_type=cause.type,
            tenant_id=cause.tenant_id,
        )
        await send_dead_letter(
            self.runtime.broker, self.runtime.settings, letter, key=cause.kafka_key()
        )
        reason = "crm_retries_exhausted" if error.transient else "crm_rejected"
        self.runtime.metrics.dead_lettered(definition.topic, reason)

    async def progress(self, entry: Document, action: str) -> None:
        """The erasures and rectifications waiting for this call: send each its receipt when
        the last CRM confirmed (R24, R25)."""
        for wait_id in waits_of(entry):
            wait = await self.store.waits.find_one_and_update(
                {"_id": wait_id},
                {"$pullAll": {"pending": [entry["_id"]]}, "$push": {"actions": action}},
                return_document=ReturnDocument.AFTER,
            )
            await self.maybe_receipt(wait_id, wait)

    async def maybe_receipt(self, wait_id: str, wait: Document | None = None) -> None:
        """The wait's receipt, when nothing is pending any more (``wait``: as just written;
        read when not given)."""
        if wait is None:
            wait = await self.store.waits.find_one({"_id": wait_id})
        if wait is None or wait.get("pending") or wait.get("receipted"):
            return
        cause = EventEnvelope.model_validate(wait["cause"])
        actions = (wait.get("actions") or ["no CRM connection holds records of the subject"])[:50]
        if wait["kind"] == "erasure":
            await send_erasure_receipt(self.runtime.publisher, cause, SERVICE, actions)
        else:
            await send_rectification_receipt(self.runtime.publisher, cause, SERVICE, actions)
        await self.store.waits.update_one({"_id": wait_id}, {"$set": {"receipted": True}})

    async def publish(
        self, cause: EventEnvelope, data: BaseModel, what: str, pii: BaseModel | None = None
    ) -> None:
        await self.runtime.publisher.publish_caused(cause, data, what=f"crm/{what}", pii=pii)


def waits_of(entry: Document) -> list[str]:
    """The waits an outbox entry answers (``wait_id``: one, on entries queued before several
    could wait for one entry)."""
    legacy = entry.get("wait_id")
    return [*entry.get("wait_ids", []), *([legacy] if legacy else [])]


def _unchanged(seen: Document, now: Document) -> bool:
    return now.get("state") == "pending" and now.get("next_attempt_at") == seen.get(
        "next_attempt_at"
    )


def _sealed_key(sealed: Document) -> str | None:
    """The key id of a sealed part of a read model (:func:`~services.common.crypto.seal_of`),
    or of a rectification holding one."""
    inner = sealed.get("sealed", sealed)
    pii = inner.get("pii") if isinstance(inner, dict) else None
    key_id = pii.get("key_id") if isinstance(pii, dict) else None
    return key_id if isinstance(key_id, str) else None
