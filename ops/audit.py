"""``leadtrail audit``: the whole lifecycle of one data subject, from the log (R34).

Every topic of the deployment (its prefix from settings) is read from the beginning; the
records keyed by the subject (the Kafka key of every event) and of the tenant are decoded and
upcast through the registry, and their personal data is decrypted with the subject's keys where
they still exist. Where a key was destroyed the personal data reads "erased": the non-personal
facts (times, types, purposes, scores) survive erasure, which is what makes the log an audit
trail.

A lead id (``lead_...``) is resolved to its subject through lead-ingest's read model or, when
that has no such lead, through the ``lead.captured`` events themselves.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from contracts import ALL_TOPICS, REGISTRY, EventEnvelope, UnknownEventError
from contracts.topics import DEAD_LETTERS, LEAD_EVENTS, TopicSpec
from ops.export import open_database
from ops.kafka_log import KafkaLogError, open_log
from services.common.crypto import DecryptionError, PiiCipher
from services.common.settings import CommonSettings
from services.common.store import Collections
from services.lead_ingest.declaration import subject_of_lead

__all__ = [
    "AUDIT_TOPICS",
    "AuditError",
    "AuditUnavailableError",
    "TimelineEntry",
    "audit_timeline",
    "causal_order",
    "hide_legacy_after_erasure",
    "read_records",
    "render_table",
    "resolve_subject",
    "subject_timeline",
]

AUDIT_TOPICS: tuple[TopicSpec, ...] = tuple(t for t in ALL_TOPICS if t is not DEAD_LETTERS)
"""Every topic of events (dead letters are copies of records that failed, not events)."""

Progress = Callable[[int, int], None]
"""Called with (records read so far, records to read in all)."""
PersonalState = Literal["none", "decrypted", "erased", "unreadable"]


class AuditError(LookupError):
    """Nothing to show: an unknown lead, subject or topic."""


class AuditUnavailableError(AuditError):
    """Kafka did not answer (or a topic is missing): the timeline could not be read."""


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    envelope: EventEnvelope


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    type: str
    version: int
    current_version: int
    producer: str
    event_id: str
    causation_id: str | None
    correlation_id: str
    topic: str
    facts: dict[str, Any]
    personal: dict[str, Any] | None
    personal_state: PersonalState
    position: tuple[int, int, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "type": self.type,
            "version": self.version,
            "current_version": self.current_version,
            "producer": self.producer,
            "event_id": self.event_id,
            "causation_id": self.causation_id,
            "correlation_id": self.correlation_id,
            "topic": self.topic,
            "facts": self.facts,
            "personal": "erased" if self.personal_state == "erased" else self.personal,
            "personal_state": self.personal_state,
        }


async def read_records(
    bootstrap: str,
    physical_topics: Sequence[str],
    *,
    key: bytes | None,
    wanted: Callable[[EventEnvelope], bool],
    progress: Progress | None = None,
) -> list[Record]:
    """Every event on these topics, up to their end offsets now, whose Kafka key is ``key``
    (any key when None) and for which ``wanted`` holds; other records are not even decoded."""
    found: list[Record] = []
    try:
        async with open_log(bootstrap, physical_topics) as log:
            starts, ends = await log.bounds()
            total = sum(ends[tp] - starts[tp] for tp in log.partitions)
            done = 0
            async for tp, records in log.batches(starts, ends):
                for record in records:
                    done += 1
                    envelope = _matching(record, key, wanted)
                    if envelope is not None:
                        found.append(Record(tp.topic, tp.partition, record.offset, envelope))
                if progress is not None:
                    progress(done, total)
    except KafkaLogError as error:
        raise AuditUnavailableError(str(error)) from None
    return found


def _matching(
    record: Any, key: bytes | None, wanted: Callable[[EventEnvelope], bool]
) -> EventEnvelope | None:
    if key is not None and record.key != key:
        return None  # not even decoded
    try:
        envelope = EventEnvelope.model_validate_json(record.value or b"")
    except ValidationError:
        return None  # not an event (the consumers dead-lettered it)
    return envelope if wanted(envelope) else None


async def resolve_subject(
    bootstrap: str, prefix: str, db: Collections, tenant_id: str, subject_or_lead: str
) -> str:
    """The subject id itself, or the subject of a lead id (``lead_...``)."""
    if not subject_or_lead.startswith("lead_"):
        return subject_or_lead
    known = await subject_of_lead(db, tenant_id, subject_or_lead)
    if known is not None:
        return known
    captured = await read_records(
        bootstrap,
        [LEAD_EVENTS.physical(prefix)],
        key=None,
        wanted=lambda e: (
            e.type == "lead.captured"
            and e.tenant_id == tenant_id
            and e.data.get("lead_id") == subject_or_lead
        ),
    )
    if not captured:
        raise AuditError(f"no lead {subject_or_lead} for tenant {tenant_id}")
    return captured[0].envelope.subject_id


async def _entry(record: Record, cipher: PiiCipher, topic_index: dict[str, int]) -> TimelineEntry:
    envelope = record.envelope
    facts: dict[str, Any] = envelope.data
    current = envelope.version
    try:
        decoded = REGISTRY.decode(envelope)
        facts, current = decoded.envelope.data, decoded.envelope.version
    except (UnknownEventError, ValidationError):
        pass  # shown as stored: an audit shows what is on the log, even what it can't read
    personal: dict[str, Any] | None = None
    state: PersonalState = "none"
    if envelope.pii is not None:
        try:
            personal = await cipher.decrypt(envelope)
        except DecryptionError:
            state = "unreadable"
        else:
            state = "erased" if personal is None else "decrypted"
            if personal is not None and current != envelope.version:
                personal = REGISTRY.upcast_pii(envelope.type, envelope.version, personal)
    return TimelineEntry(
        at=envelope.occurred_at,
        type=envelope.type,
        version=envelope.version,
        current_version=current,
        producer=envelope.producer,
        event_id=envelope.id,
        causation_id=envelope.causation_id,
        correlation_id=envelope.correlation_id,
        topic=record.topic,
        facts=facts,
        personal=personal,
        personal_state=state,
        position=(topic_index.get(record.topic, 99), record.partition, record.offset),
    )


def causal_order(entries: Iterable[TimelineEntry]) -> list[TimelineEntry]:
    """By time, an event never before its cause (events of one millisecond, or from clocks a
    little apart), then by position on the log; an event id seen twice (a redelivered cause
    republishes the same id) is shown once."""
    ordered: list[TimelineEntry] = []
    by_id: dict[str, TimelineEntry] = {}
    for entry in sorted(entries, key=lambda e: (e.at, e.position)):
        by_id.setdefault(entry.event_id, entry)
    placed: set[str] = set()

    def place(entry: TimelineEntry) -> None:
        chain = [entry]
        in_chain = {entry.event_id}
        while True:
            cause = by_id.get(chain[-1].causation_id or "")
            if cause is None or cause.event_id in placed or cause.event_id in in_chain:
                break
            chain.append(cause)
            in_chain.add(cause.event_id)
        for item in reversed(chain):
            if item.event_id not in placed:
                placed.add(item.event_id)
                ordered.append(item)

    for entry in by_id.values():
        place(entry)
    return ordered


async def audit_timeline(
    bootstrap: str,
    prefix: str,
    cipher: PiiCipher,
    tenant_id: str,
    subject_id: str,
    *,
    progress: Progress | None = None,
) -> list[TimelineEntry]:
    """Every event of the subject, in order, personal data decrypted or marked erased."""
    physical = [topic.physical(prefix) for topic in AUDIT_TOPICS]
    records = await read_records(
        bootstrap,
        physical,
        key=subject_id.encode(),
        wanted=lambda e: e.tenant_id == tenant_id and e.subject_id == subject_id,
        progress=progress,
    )
    if not records:
        raise AuditError(f"no events of subject {subject_id} for tenant {tenant_id}")
    index = {name: n for n, name in enumerate(physical)}
    entries = [await _entry(record, cipher, index) for record in records]
    return causal_order(hide_legacy_after_erasure(entries))


def hide_legacy_after_erasure(entries: Sequence[TimelineEntry]) -> list[TimelineEntry]:
    """Drop the ``legacy_*`` facts of events up to the subject's latest ``erasure.requested``.

    A ``legacy_*`` fact is personal data an old event version kept in clear (a reviewer, an
    attester) and its upcaster could not encrypt (contracts/catalog.py): shown while the
    subject exists, like the encrypted fields, and no longer once they were erased."""
    erased = [entry.at for entry in entries if entry.type == "erasure.requested"]
    if not erased:
        return list(entries)
    until = max(erased)
    return [
        replace(
            entry,
            facts={k: v for k, v in entry.facts.items() if not k.startswith("legacy_")},
        )
        if entry.at <= until
        else entry
        for entry in entries
    ]


def _compact(values: dict[str, Any], width: int = 160) -> str:
    text = ", ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value, default=str)}"
        for key, value in values.items()
        if value not in (None, [], {})
    )
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(
    console: Console, tenant_id: str, subject_id: str, entries: Sequence[TimelineEntry]
) -> None:
    table = Table(title=f"{tenant_id} / {subject_id}: {len(entries)} events", expand=True)
    for column in ("time (UTC)", "type", "v", "producer", "caused by", "facts", "personal data"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        if entry.personal_state == "decrypted":
            personal = _compact(entry.personal or {})
        elif entry.personal_state == "none":
            personal = ""
        else:
            personal = f"[red]{entry.personal_state}[/red]"
        table.add_row(
            entry.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            entry.type,
            str(entry.version),
            entry.producer,
            (entry.causation_id or "")[:8],
            _compact(entry.facts),
            personal,
        )
    console.print(table)


async def subject_timeline(
    settings: CommonSettings,
    tenant_id: str,
    subject_or_lead: str,
    *,
    progress: Progress | None = None,
) -> tuple[str, list[TimelineEntry]]:
    """``leadtrail audit``: resolve a lead to its subject, then the subject's timeline."""

    async with open_database(settings) as (db, cipher):
        subject_id = await resolve_subject(
            settings.kafka_bootstrap,
            settings.topic_prefix,
            db,
            tenant_id,
            subject_or_lead,
        )
        entries = await audit_timeline(
            settings.kafka_bootstrap,
            settings.topic_prefix,
            cipher,
            tenant_id,
            subject_id,
            progress=progress,
        )
    return subject_id, entries
