"""lead-ingest's read model as a pure fold (services/lead_ingest/domain.py).

Live, an erasure arrives through its own consumer group and may be folded before lead events
published earlier; a replay folds in log order. The documents must end the same either way
(R18, R19): that is the property tested here, over any sequence of lead events and any point
at which the erasure is handled.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from contracts import REGISTRY, EventEnvelope
from contracts.envelope import EncryptedPII
from contracts.events import erasure, lead
from services.common.pipeline import VERSION_FIELD, BatchFolder, DocRef, Event
from services.common.store import APPLIED_FIELD, Document
from services.lead_ingest.domain import LeadReadModel, lead_ref, subject_ref

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
SEALED = EncryptedPII(key_id="acme/sub-1/1", nonce="AA==", ciphertext="AA==")


def _event(data: BaseModel, minute: int, *, pii: bool = False) -> Event:
    definition = REGISTRY.definition_for(type(data))
    envelope = EventEnvelope(
        id=str(uuid.uuid4()),
        type=definition.type,
        version=definition.version,
        occurred_at=T0 + timedelta(minutes=minute),
        tenant_id="acme",
        subject_id="sub-1",
        correlation_id="corr-1",
        producer="test",
        data=data.model_dump(mode="json"),
        pii=SEALED if pii else None,
    )
    return REGISTRY.decode(envelope)


def _captured(lead_id: str, minute: int) -> Event:
    return _event(
        lead.LeadCapturedV1(lead_id=lead_id, source={"kind": "web_form", "url": "https://a.test"}),
        minute,
        pii=True,
    )


def _interaction(lead_id: str, minute: int) -> Event:
    data = lead.LeadInteractionRecordedV1(
        lead_id=lead_id, interaction_id=f"i-{minute}", channel="chat", answered=["budget"]
    )
    return _event(data, minute, pii=True)


def _erasure(minute: int) -> Event:
    data = erasure.ErasureRequestedV1(
        erasure_id="er-1",
        trigger={"kind": "privacy_request", "event_id": str(uuid.uuid4()), "request_id": "rq-1"},
        deadline=T0 + timedelta(days=30),
        expected_receipts=["lead-ingest"],
    )
    return _event(data, minute)


class _Memory:
    """Just enough of a store for the folder: a dict per collection."""

    def __init__(self) -> None:
        self.collections: dict[str, dict[str, Document]] = {}

    def __getitem__(self, name: str) -> Any:
        return _MemoryCollection(self.collections.setdefault(name, {}))


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


def _without_bookkeeping(document: Document | None) -> Document | None:
    if document is None:
        return None
    return {k: v for k, v in document.items() if k not in (APPLIED_FIELD, VERSION_FIELD)}


async def _fold(events: Sequence[Event], batch: int) -> dict[DocRef, Document | None]:
    db = _Memory()
    folder = BatchFolder(db, LeadReadModel())
    for start in range(0, len(events), batch):
        await folder.fold(events[start : start + batch])
    return {
        DocRef(name, key): _without_bookkeeping(document)
        for name, documents in db.collections.items()
        for key, document in documents.items()
    }


lead_events = st.lists(
    st.tuples(st.sampled_from(["lead_1", "lead_2"]), st.booleans()), min_size=1, max_size=8
)


@settings(max_examples=60, deadline=None)
@given(
    steps=lead_events, erased_after=st.integers(min_value=0, max_value=8), batch=st.integers(1, 4)
)
async def test_an_erasure_folded_early_ends_as_one_folded_in_log_order(
    steps: list[tuple[str, bool]], erased_after: int, batch: int
) -> None:
    events: list[Event] = []
    captured: set[str] = set()
    for minute, (lead_id, interaction) in enumerate(steps):
        if interaction and lead_id in captured:
            events.append(_interaction(lead_id, minute))
        else:
            captured.add(lead_id)
            events.append(_captured(lead_id, minute))
    erasure_event = _erasure(erased_after)
    position = min(erased_after, len(events))
    log_order = [*events[:position], erasure_event, *events[position:]]
    erasure_first = [erasure_event, *events]

    replayed = await _fold(log_order, batch)
    live = await _fold(erasure_first, batch)

    assert live == replayed
    subject = replayed[subject_ref("acme", "sub-1")]
    assert subject is not None
    assert subject["erased_at"] == erasure_event.envelope.occurred_at
    for lead_id in captured:
        document = replayed[lead_ref(lead_id)]
        assert document is not None
        assert document["contact"] is None, "nothing personal survives the erasure"
        assert all(item["answers"] is None for item in document.get("interactions", []))


async def test_the_fold_does_not_change_what_it_is_given() -> None:
    model = LeadReadModel()
    event = _interaction("lead_1", 1)
    before: dict[DocRef, Document | None] = {
        subject_ref("acme", "sub-1"): {"lead_ids": ["lead_1"], "erased_at": T0},
        lead_ref("lead_1"): {"tenant_id": "acme", "interactions": [{"answers": {"x": 1}}]},
    }
    kept = copy.deepcopy(before)
    changed = model.apply(before, event)
    assert before == kept
    document = changed[lead_ref("lead_1")]
    assert document is not None
    assert len(document["interactions"]) == 2
