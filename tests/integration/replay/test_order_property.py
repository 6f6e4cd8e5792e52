"""Property, on the document store: a service's read models depend on the set of events it
applied, not on how its topics were interleaved.

Live, a service reads its topics in several consumer groups (or one group over several topics
and partitions), so events of one subject from different topics reach ``apply`` in an order
that differs from the replay's (partitions merged by timestamp). Only each partition's own
order is fixed. Each test here writes a *story* (a subject's events in the order they happened,
each on its topic's lane) and applies it through the service's own ``apply`` twice: in that
order as ``leadtrail replay`` does (folded in memory, :mod:`ops.replay_memory`, then written
out), and in another interleaving that keeps every lane's order as the live service might, on
the real document store; then compares the two as ``leadtrail replay --verify`` does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from contracts import EventEnvelope
from contracts.events.retention import TENANT_SUBJECT
from ops.replay import SERVICES, diff_documents
from ops.replay_memory import MemoryCollections, write_out
from services.common.store import Document, Suffixed

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[3] / "contracts" / "examples"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TENANT = "acme"
SUBJECT = "sub_order"

Lane = str
"""A topic partition: ``lead``, ``consent``, ``privacy``, ``erasure``, ``retention`` (the
subject's partition of retention-events) or ``tenant`` (its tenant-wide partition)."""


@cache
def _example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / name).read_text())["event"]
    return loaded


@dataclass
class Story:
    """One subject's events in the order they happened, each on the lane it travels on."""

    events: list[tuple[Lane, EventEnvelope]] = field(default_factory=list)
    now: datetime = START
    leads: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    holds: list[str] = field(default_factory=list)

    def add(
        self,
        lane: Lane,
        kind: str,
        *,
        after: timedelta = timedelta(minutes=7),
        example: str = "1.json",
        subject: str = SUBJECT,
        **data: Any,
    ) -> EventEnvelope:
        self.now += after
        source = _example(f"{kind}/{example}")
        number = len(self.events)
        envelope = EventEnvelope.model_validate(
            {
                **source,
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"order/{number}/{kind}")),
                "occurred_at": self.now,
                "tenant_id": TENANT,
                "subject_id": subject,
                "data": {**source["data"], **data},
            }
        )
        # As the consumers get it: JSON off the wire.
        envelope = EventEnvelope.model_validate_json(envelope.model_dump_json())
        self.events.append((lane, envelope))
        return envelope

    # -- the steps ---------------------------------------------------------------------------
    def capture(self, third_party: bool = False) -> None:
        lead_id = f"lead_{len(self.leads) + 1}"
        self.leads.append(lead_id)
        example = "1-third-party.json" if third_party else "1.json"
        self.add("lead", "lead.captured", example=example, lead_id=lead_id)

    def lead_step(self, kind: str, pick: int) -> None:
        lead_id = self.leads[pick % len(self.leads)]
        n = len(self.events)
        if kind == "interaction":
            self.add(
                "lead", "lead.interaction_recorded", lead_id=lead_id, interaction_id=f"int_{n}"
            )
        elif kind == "scored":
            self.add("lead", "lead.scored", lead_id=lead_id, score=40 + n % 50)
        elif kind == "reviewed":
            self.add("lead", "lead.score_reviewed", lead_id=lead_id, review_id=f"rev_{n}")
        elif kind == "qualified":
            self.add("lead", "lead.qualified", lead_id=lead_id)
        elif kind == "rectified":
            self.add("lead", "lead.rectified", rectification_id=f"rect_{n}")

    def consent_step(self, kind: str) -> None:
        if kind == "granted":
            # Derived from the capture by consent-ledger: given when the lead was captured.
            given = self.events[0][1].occurred_at
            self.add("consent", "consent.granted", given_at=given.isoformat())
        elif kind == "withdrawn":
            self.add("consent", "consent.withdrawn")
        elif kind == "objection":
            self.add("consent", "objection.recorded")
        elif kind == "restricted":
            self.add("consent", "restriction.placed")
        elif kind == "lifted":
            self.add("consent", "restriction.lifted")
        elif kind == "suppressed":
            self.add("consent", "suppression.added")

    def privacy_step(self, kind: str) -> None:
        if kind == "received" or not self.requests:
            request_id = f"pr_{len(self.events)}"
            self.requests.append(request_id)
            self.add("privacy", "privacy.request.received", request_id=request_id)
        elif kind == "verified":
            self.add("privacy", "privacy.request.verified", request_id=self.requests[-1])
        elif kind == "completed":
            self.add("privacy", "privacy.request.completed", request_id=self.requests[-1])

    def erasure(self) -> None:
        self.add("erasure", "erasure.requested", erasure_id=f"er_{len(self.events)}")

    def expiry(self, pick: int, period_days: int = 730) -> None:
        """An expiry as the tick publishes it, for an anchor among the times seen so far (the
        last activity's, or an older one that new activity has moved on from)."""
        times = [e.occurred_at for lane, e in self.events if lane in ("lead", "consent")]
        anchor = times[-1 - pick % len(times)]
        self.add(
            "retention",
            "retention.expired",
            category="lead_data",
            anchor_at=anchor.isoformat(),
            due_at=(anchor + timedelta(days=period_days)).isoformat(),
            period_days=period_days,
            all_categories_expired=False,
        )

    def policy(self, period_days: int) -> None:
        self.add(
            "tenant",
            "retention.policy_set",
            subject=TENANT_SUBJECT,
            category="lead_data",
            period_days=period_days,
        )

    def hold(self, tenant_wide: bool, release: bool) -> None:
        lane, subject, scope = ("retention", SUBJECT, "subject")
        if tenant_wide:
            lane, subject, scope = ("tenant", TENANT_SUBJECT, "tenant")
        if release and self.holds:
            self.add(
                lane,
                "retention.hold_released",
                subject=subject,
                hold_id=self.holds[-1],
                scope=scope,
            )
            return
        hold_id = f"hold_{len(self.events)}"
        self.holds.append(hold_id)
        self.add(lane, "retention.hold_placed", subject=subject, hold_id=hold_id, scope=scope)

    # -- orders ------------------------------------------------------------------------------
    def in_order(self) -> list[EventEnvelope]:
        return [envelope for _, envelope in self.events]

    def lanes(self) -> list[Lane]:
        return [lane for lane, _ in self.events]

    def interleaved(self, lanes: list[Lane]) -> list[EventEnvelope]:
        """The events with the lanes taken in the order ``lanes`` names them, each lane's own
        events in their order (a partition's order is fixed; only the merge differs)."""
        assert sorted(lanes) == sorted(self.lanes())
        queues: dict[Lane, list[EventEnvelope]] = {}
        for lane, envelope in self.events:
            queues.setdefault(lane, []).append(envelope)
        return [queues[lane].pop(0) for lane in lanes]

    def lane_first(self, first: Lane) -> list[EventEnvelope]:
        """Every event of lane ``first`` before the others (a consumer group far ahead)."""
        lanes = self.lanes()
        return self.interleaved(
            [lane for lane in lanes if lane == first] + [lane for lane in lanes if lane != first]
        )

    def lane_last(self, last: Lane) -> list[EventEnvelope]:
        """Every event of lane ``last`` after the others (a consumer group lagging behind)."""
        lanes = self.lanes()
        return self.interleaved(
            [lane for lane in lanes if lane != last] + [lane for lane in lanes if lane == last]
        )


# -- applying and comparing -------------------------------------------------------------------
@pytest.fixture
async def client(mongo_url: str) -> AsyncIterator[AsyncMongoClient[Document]]:
    # tz_aware like the services' own client (services.common.store.make_mongo_client).
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url, tz_aware=True)
    yield mongo
    await mongo.close()


async def _live(
    service: str, db: AsyncDatabase[Document], suffix: str, events: list[EventEnvelope]
) -> None:
    """As the service: each event applied to the document store."""
    projector = SERVICES[service].projector(Suffixed(db, suffix))
    await projector.ensure_indexes()
    for envelope in events:
        await projector.apply(envelope)


async def _replay(
    service: str, db: AsyncDatabase[Document], suffix: str, events: list[EventEnvelope]
) -> None:
    """As ``leadtrail replay``: folded in memory, then written out."""
    spec = SERVICES[service]
    memory = MemoryCollections()
    projector = spec.projector(memory)
    await projector.ensure_indexes()
    for envelope in events:
        await projector.apply(envelope)
    await write_out(memory, db, {name: f"{name}_{suffix}" for name in spec.read_models})


async def differences(
    client: AsyncMongoClient[Document],
    service: str,
    replayed: list[EventEnvelope],
    live: list[EventEnvelope],
) -> list[str]:
    """The same events replayed in one order and applied live in another; every difference
    between the results, as ``leadtrail replay --verify`` prints them."""
    assert sorted(e.id for e in replayed) == sorted(e.id for e in live)
    db = client[f"order_{uuid.uuid4().hex[:10]}"]
    try:
        await _replay(service, db, "rebuilt", replayed)
        await _live(service, db, "live", live)
        found = []
        for name in SERVICES[service].read_models:
            found += diff_documents(
                name,
                await db[f"{name}_live"].find({}, sort=[("_id", 1)]).to_list(None),
                await db[f"{name}_rebuilt"].find({}, sort=[("_id", 1)]).to_list(None),
            )
        return [str(difference) for difference in found]
    finally:
        await client.drop_database(db.name)


# -- the order dependences found, one story each ----------------------------------------------
def _lead_story_with_late_erasure() -> Story:
    story = Story()
    story.capture()
    story.consent_step("granted")
    story.lead_step("interaction", 0)
    story.lead_step("scored", 0)
    story.lead_step("reviewed", 0)
    story.erasure()
    # Published after the erasure (or before it, unseen yet by a lagging lead consumer group):
    story.lead_step("interaction", 0)
    story.lead_step("rectified", 0)
    story.capture()
    return story


async def test_crm_sync_lead_events_handled_after_the_erasure_end_as_if_before(
    client: AsyncMongoClient[Document],
) -> None:
    """crm-sync reads lead- and erasure-events in separate groups: an erasure handled before
    lead events left their ciphertexts (interactions, rectifications, a later lead's contact)
    in ``crm_leads``; handled after them, it strips them."""
    story = _lead_story_with_late_erasure()
    first = await differences(client, "crm-sync", story.in_order(), story.lane_first("erasure"))
    assert first == []
    last = await differences(client, "crm-sync", story.in_order(), story.lane_last("erasure"))
    assert last == []


async def test_lead_ingest_lead_events_handled_after_the_erasure_end_as_if_before(
    client: AsyncMongoClient[Document],
) -> None:
    """lead-ingest: the same with ``leads`` (contact, interaction answers, score inputs and
    review reason, rectifications, erased_at)."""
    story = _lead_story_with_late_erasure()
    assert (
        await differences(client, "lead-ingest", story.in_order(), story.lane_first("erasure"))
        == []
    )


async def test_retention_a_consent_change_read_before_the_capture_still_counts(
    client: AsyncMongoClient[Document],
) -> None:
    """retention-scheduler reads every topic in one group, in no fixed order across topics: a
    consent change handled before the capture was dropped ("only if scheduled"), handled after
    it, it moved the anchor."""
    story = Story()
    story.capture()
    story.consent_step("withdrawn")
    assert (
        await differences(
            client, "retention-scheduler", story.in_order(), story.lane_first("consent")
        )
        == []
    )


async def test_retention_activity_read_after_the_erasure_does_not_reopen_the_schedule(
    client: AsyncMongoClient[Document],
) -> None:
    """An interaction that happened before the erasure but was read after it started a new
    schedule; read before it, it was closed by the erasure."""
    story = Story()
    story.capture()
    story.lead_step("interaction", 0)
    story.erasure()
    assert (
        await differences(
            client, "retention-scheduler", story.in_order(), story.lane_first("erasure")
        )
        == []
    )


async def test_retention_activity_read_before_or_after_an_expiry_of_an_older_anchor(
    client: AsyncMongoClient[Document],
) -> None:
    """An expiry for the anchor before a new activity: read first, it set ``expired_at`` and
    ``event_id`` that the activity's new schedule kept; read after the activity, it was ignored."""
    story = Story()
    story.capture()
    story.expiry(pick=0)
    story.lead_step("interaction", 0)
    assert (
        await differences(
            client, "retention-scheduler", story.in_order(), story.lane_last("retention")
        )
        == []
    )


async def test_retention_a_policy_read_before_or_after_an_expiry_or_erasure(
    client: AsyncMongoClient[Document],
) -> None:
    """Policies are tenant-wide, in another partition than the subject's events: a policy read
    before an erasure changed the closed schedule's period, read after it, not; and a policy
    read before an expiry made the expiry's due time no longer match."""
    erased = Story()
    erased.capture()
    erased.erasure()
    erased.policy(365)
    assert (
        await differences(
            client, "retention-scheduler", erased.in_order(), erased.lane_first("tenant")
        )
        == []
    )
    expired = Story()
    expired.capture()
    expired.expiry(pick=0)
    expired.policy(365)
    assert (
        await differences(
            client, "retention-scheduler", expired.in_order(), expired.lane_first("tenant")
        )
        == []
    )


@pytest.mark.parametrize("service", ["retention-scheduler", "erasure-propagator"])
async def test_a_hold_released_through_another_partition_stays_released(
    client: AsyncMongoClient[Document], service: str
) -> None:
    """A release travels under the key the operator gives (``leadtrail holds release`` without
    ``--subject`` sends it as the tenant's): handled before the placement, the hold ended
    active, and the release's scope, subject and reason replaced the placement's."""
    story = Story()
    story.capture()
    story.add("retention", "retention.hold_placed", hold_id="hold_1", scope="subject")
    story.add(
        "tenant",
        "retention.hold_released",
        subject=TENANT_SUBJECT,
        hold_id="hold_1",
        scope="tenant",
    )
    assert await differences(client, service, story.in_order(), story.lane_first("tenant")) == []


# -- the property, per service ----------------------------------------------------------------
LEAD_STEPS = ["interaction", "scored", "reviewed", "qualified", "rectified", "capture"]
CONSENT_STEPS = ["granted", "withdrawn", "objection", "restricted", "lifted", "suppressed"]
PRIVACY_STEPS = ["received", "verified", "completed"]
RETENTION_STEPS = ["expiry", "policy", "hold", "release", "tenant_hold", "tenant_release"]

STEPS: dict[str, list[str]] = {
    "lead-ingest": [*LEAD_STEPS, *CONSENT_STEPS, *PRIVACY_STEPS, "erasure"],
    "consent-ledger": ["capture", *CONSENT_STEPS, "received", "verified", "erasure"],
    "retention-scheduler": [
        "interaction",
        "reviewed",
        "rectified",
        "capture",
        "granted",
        "withdrawn",
        "erasure",
        *RETENTION_STEPS,
    ],
    "erasure-propagator": ["received", "hold", "release", "tenant_hold", "tenant_release"],
    "crm-sync": [*LEAD_STEPS, *CONSENT_STEPS, "erasure"],
}


def build(steps: list[tuple[str, int]], third_party: bool) -> Story:
    story = Story()
    story.capture(third_party)
    for kind, pick in steps:
        if kind == "capture":
            story.capture(third_party=pick % 3 == 0)
        elif kind in LEAD_STEPS:
            story.lead_step(kind, pick)
        elif kind in CONSENT_STEPS:
            story.consent_step(kind)
        elif kind in PRIVACY_STEPS:
            story.privacy_step(kind)
        elif kind == "erasure":
            story.erasure()
        elif kind == "expiry":
            story.expiry(pick)
        elif kind == "policy":
            story.policy((30, 365, 730)[pick % 3])
        else:
            story.hold(tenant_wide=kind.startswith("tenant"), release=kind.endswith("release"))
    return story


@pytest.mark.parametrize("service", sorted(STEPS))
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
async def test_any_interleaving_of_the_topics_ends_like_the_order_of_events(
    client: AsyncMongoClient[Document], service: str, data: st.DataObject
) -> None:
    steps = data.draw(
        st.lists(
            st.tuples(st.sampled_from(STEPS[service]), st.integers(0, 5)), min_size=1, max_size=12
        ),
        label="steps",
    )
    story = build(steps, third_party=data.draw(st.booleans(), label="third party"))
    lanes = data.draw(st.permutations(story.lanes()), label="lanes")
    found = await differences(client, service, story.in_order(), story.interleaved(list(lanes)))
    assert found == [], [f"{lane} {e.type}" for lane, e in story.events]
