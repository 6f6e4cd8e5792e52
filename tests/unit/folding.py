"""Folding events in memory, for the property tests of the services' read models: event
builders of one subject's lead lifecycle, and just enough of a store for the batch folder."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from pydantic import BaseModel

from contracts import REGISTRY, EventEnvelope
from contracts.envelope import EncryptedPII
from contracts.events import erasure, lead
from services.common.pipeline import VERSION_FIELD, BatchFolder, DocRef, Event, ReadModel
from services.common.store import APPLIED_FIELD, Document

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
SEALED = EncryptedPII(key_id="acme/sub-1/1", nonce="AA==", ciphertext="AA==")


def event(data: BaseModel, minute: int, *, pii: bool = False, subject: str = "sub-1") -> Event:
    definition = REGISTRY.definition_for(type(data))
    envelope = EventEnvelope(
        id=str(uuid.uuid4()),
        type=definition.type,
        version=definition.version,
        occurred_at=T0 + timedelta(minutes=minute),
        tenant_id="acme",
        subject_id=subject,
        correlation_id="corr-1",
        producer="test",
        data=data.model_dump(mode="json"),
        pii=SEALED if pii else None,
    )
    return REGISTRY.decode(envelope)


def captured(lead_id: str, minute: int) -> Event:
    return event(
        lead.LeadCapturedV1(lead_id=lead_id, source={"kind": "web_form", "url": "https://a.test"}),
        minute,
        pii=True,
    )


def interaction(lead_id: str, minute: int) -> Event:
    data = lead.LeadInteractionRecordedV1(
        lead_id=lead_id, interaction_id=f"i-{minute}", channel="chat", answered=["budget"]
    )
    return event(data, minute, pii=True)


def erasure_event(minute: int) -> Event:
    data = erasure.ErasureRequestedV1(
        erasure_id="er-1",
        trigger={"kind": "privacy_request", "event_id": str(uuid.uuid4()), "request_id": "rq-1"},
        deadline=T0 + timedelta(days=30),
        expected_receipts=["lead-ingest"],
    )
    return event(data, minute)


class Memory:
    """Just enough of a store for the folder: a dict per collection."""

    def __init__(self) -> None:
        self.collections: dict[str, dict[str, Document]] = {}

    def __getitem__(self, name: str) -> Any:
        return _MemoryCollection(self.collections.setdefault(name, {}))

    def all(self) -> dict[DocRef, Document]:
        """Every document, by reference."""
        return {
            DocRef(name, key): document
            for name, documents in self.collections.items()
            for key, document in documents.items()
        }


class _Cursor:
    def __init__(self, documents: list[Document]) -> None:
        self.documents = documents

    def __aiter__(self) -> Any:
        return self._iterate()

    async def _iterate(self) -> Any:
        for document in self.documents:
            yield copy.deepcopy(document)


class _Result:
    deleted_count = 0


class _MemoryCollection:
    def __init__(self, documents: dict[str, Document]) -> None:
        self.documents = documents

    def find(self, query: Document) -> _Cursor:
        wanted = query["_id"]["$in"]
        return _Cursor([self.documents[i] for i in wanted if i in self.documents])

    async def bulk_write(self, operations: Sequence[Any], ordered: bool) -> _Result:
        for operation in operations:
            document = copy.deepcopy(operation._doc)
            self.documents[document["_id"]] = document
        return _Result()


def without_bookkeeping(document: Document | None) -> Document | None:
    if document is None:
        return None
    return {k: v for k, v in document.items() if k not in (APPLIED_FIELD, VERSION_FIELD)}


async def fold(
    model: ReadModel, events: Sequence[Event], batch: int
) -> dict[DocRef, Document | None]:
    """Every document ``model`` ends with after ``events``, folded ``batch`` at a time, without
    the folder's bookkeeping."""
    db = Memory()
    folder = BatchFolder(db, model)
    for start in range(0, len(events), batch):
        await folder.fold(events[start : start + batch])
    return {ref: without_bookkeeping(document) for ref, document in db.all().items()}


lead_steps = st.lists(
    st.tuples(st.sampled_from(["lead_1", "lead_2"]), st.booleans()), min_size=1, max_size=8
)
"""(lead, answered) steps: a capture the first time a lead appears or when not answered, else
an interaction."""


def erasure_orders(
    steps: list[tuple[str, bool]], erased_after: int
) -> tuple[list[Event], list[Event], set[str], Event]:
    """One subject's lead events from ``steps`` with an erasure at minute ``erased_after``:
    (the log order a replay folds, the order live folds when the erasure is handled first,
    the leads captured, the erasure)."""
    events: list[Event] = []
    seen: set[str] = set()
    for minute, (lead_id, answered) in enumerate(steps):
        if answered and lead_id in seen:
            events.append(interaction(lead_id, minute))
        else:
            seen.add(lead_id)
            events.append(captured(lead_id, minute))
    erased = erasure_event(erased_after)
    position = min(erased_after, len(events))
    return [*events[:position], erased, *events[position:]], [erased, *events], seen, erased
