"""Retention, legal holds, erasure with receipts, rectification (R12, R15-R20, R24, R25), on
real Kafka and the store with the services sharing a fake clock: two years pass in milliseconds."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from contracts import EventEnvelope
from contracts.events import privacy
from ops.operator import OperatorError, place_hold, release_hold, set_policy
from services.common.publisher import EventPublisher
from services.retention_scheduler.declaration import DECLARATION as RETENTION
from services.retention_scheduler.handlers import RetentionHandlers
from services.retention_scheduler.policy import PolicyError
from services.retention_scheduler.schedule import RetentionStore, Scheduler
from tests.helpers import Samples, eventually, sample, scrape_metrics
from tests.integration.retention_erasure.conftest import Lifecycle

pytestmark = pytest.mark.integration


async def due(lifecycle: Lifecycle, subject_id: str, category: str = "lead_data") -> Any:
    async def probe() -> Any:
        return (
            await lifecycle.stack.runtimes["retention_scheduler"]
            .db["retention_due"]
            .find_one({"_id": f"acme:{subject_id}:{category}"})
        )

    return await eventually(probe, what=f"{category} schedule of {subject_id}")


async def erasure_metrics(lifecycle: Lifecycle, until: Any = None) -> Samples:
    """erasure-propagator's ``/metrics``, once ``until(samples)`` holds (if given)."""

    async def probe() -> Samples | None:
        samples = await scrape_metrics(lifecycle.stack.client("erasure_propagator"))
        return samples if until is None or until(samples) else None

    return await eventually(probe, what="erasure metrics")


def erasures(samples: Samples, name: str, **labels: str) -> float | None:
    return sample(samples, name, service="erasure-propagator", **labels)


async def completed(lifecycle: Lifecycle, subject_id: str) -> EventEnvelope:
    return await lifecycle.stack.wait_for_event(
        "erasure-events",
        lambda e: e.type == "erasure.completed" and e.subject_id == subject_id,
        within=60,
    )


async def test_two_years_after_the_last_activity_the_lead_expires_once_and_is_erased(
    lifecycle: Lifecycle,
) -> None:
    lead = await lifecycle.capture()
    subject = lead["subject_id"]
    await due(lifecycle, subject)
    lifecycle.clock.advance(timedelta(days=100))
    await lifecycle.stack.client("lead_ingest").post(
        f"/v1/leads/{lead['lead_id']}/interactions",
        json={"channel": "phone", "answers": {"budget": 5000}},
        headers=lifecycle.stack.auth(),
    )
    schedule = await eventually(
        lambda: _moved(lifecycle, subject), what="the due date to follow the last activity"
    )
    assert schedule["due_at"] == lifecycle.clock.now() + timedelta(days=730)

    lifecycle.clock.advance(timedelta(days=729))
    assert await lifecycle.scheduler.tick() == 0, "not due yet"
    lifecycle.clock.advance(timedelta(days=2))
    assert await lifecycle.scheduler.tick() == 1
    assert await lifecycle.scheduler.tick() == 0, "exactly once"

    done = await completed(lifecycle, subject)
    assert done.data["trigger"]["kind"] == "retention"
    count = "leadtrail_erasure_completion_seconds_count"
    samples = await erasure_metrics(
        lifecycle, until=lambda s: erasures(s, count, trigger="retention")
    )
    assert erasures(samples, count, trigger="retention") == 1
    # the shared fake clock stood still from expiry to completion
    assert erasures(samples, "leadtrail_erasure_completion_seconds_sum", trigger="retention") == 0
    for state in ("requested", "deferred"):
        assert erasures(samples, "leadtrail_erasures_open", state=state) == 0
        assert erasures(samples, "leadtrail_erasures_past_deadline", state=state) == 0
    assert {r["service"] for r in done.data["receipts"]} == {
        "lead-ingest",
        "consent-ledger",
        "retention-scheduler",
        "crm-sync",
    }
    view = await lifecycle.stack.get_json(
        "lead_ingest", f"/v1/leads/{lead['lead_id']}", until=lambda v: v["state"] == "erased"
    )
    assert view["contact"] is None
    assert view["interactions"][0]["answers"] is None
    assert view["source"]["kind"] == "web_form", "non-personal facts stay"
    expired = [
        e for e in await lifecycle.stack.events("retention-events") if e.type == "retention.expired"
    ]
    assert len(expired) == 1


async def _moved(lifecycle: Lifecycle, subject: str) -> Any:
    document = await due(lifecycle, subject)
    return (
        document
        if document["anchor_at"] > document["due_at"] - timedelta(days=731)
        and (document["anchor_at"] == lifecycle.clock.now())
        else None
    )


class RecordingPublisher(EventPublisher):
    """Builds events exactly like the real publisher and keeps them instead of sending."""

    def __init__(self, original: EventPublisher) -> None:
        self.__dict__.update(original.__dict__)
        self.sent: list[EventEnvelope] = []

    async def send(self, envelope: EventEnvelope) -> EventEnvelope:
        self.sent.append(envelope)
        return envelope


async def test_a_schedule_changed_after_the_tick_read_it_is_not_expired_for_its_old_date(
    lifecycle: Lifecycle,
) -> None:
    """A tick reads a batch of due schedules, then expires them one by one; meanwhile the
    subject's consumers may move one (new activity). What it publishes is the schedule as it
    is then, never the one it read."""
    lead = await lifecycle.capture()
    document = await due(lifecycle, lead["subject_id"])
    lifecycle.clock.advance(timedelta(days=731))
    as_read = {**document, "due_at": document["due_at"] - timedelta(days=1)}
    assert not await lifecycle.scheduler.expire(as_read, lifecycle.clock.now())
    published = await lifecycle.stack.events("retention-events")
    assert [e for e in published if e.type == "retention.expired"] == []
    assert await lifecycle.scheduler.tick() == 1, "the schedule as it is now still expires"


async def test_expiry_is_exactly_once_across_replicas_and_a_replay_repeats_it(
    lifecycle: Lifecycle,
) -> None:
    subjects = [
        (await lifecycle.capture(contact={"email": f"p{n}@example.org"}))["subject_id"]
        for n in range(4)
    ]
    assert len(set(subjects)) == 4
    for subject in subjects:
        await due(lifecycle, subject)
    lifecycle.clock.advance(timedelta(days=731))
    scheduler = lifecycle.scheduler
    replica = Scheduler(scheduler.store, scheduler.publisher, lifecycle.clock)
    # A schedule that moved after a tick read its batch (a late rescore is new activity) is
    # left to the next tick, so the replicas tick together until nothing is left.
    expired = 0
    for _ in range(5):
        expired += sum(await asyncio.gather(scheduler.tick(), replica.tick()))
        if expired >= 4:
            break
    assert expired == 4, "two replicas ticking at once expire each subject once"
    assert await scheduler.tick() + await replica.tick() == 0
    live = [
        e for e in await lifecycle.stack.events("retention-events") if e.type == "retention.expired"
    ]
    assert sorted(e.subject_id for e in live) == sorted(subjects)

    # Replay: a fresh read model fed the same events, ticked with the same clock.
    runtime = lifecycle.stack.runtimes["retention_scheduler"]
    fresh = RetentionStore(runtime.mongo[f"{runtime.settings.mongo_db}_replay"])
    await fresh.ensure_indexes()
    recorder = RecordingPublisher(scheduler.publisher)
    handlers = RetentionHandlers(runtime.registry, recorder, fresh)
    (subscription,) = RETENTION.subscriptions
    for topic in ("lead-events", "consent-events"):
        for event in await lifecycle.stack.events(topic):
            if event.type in subscription.wanted(runtime.registry, topic):
                await handlers.on_events([event])
    assert await Scheduler(fresh, recorder, lifecycle.clock).tick() == 4
    replayed = [e for e in recorder.sent if e.type == "retention.expired"]
    assert {(e.id, e.subject_id, e.data["due_at"]) for e in replayed} == {
        (e.id, e.subject_id, e.data["due_at"]) for e in live
    }
    await runtime.mongo.drop_database(f"{runtime.settings.mongo_db}_replay")


async def test_a_grant_recorded_late_keeps_the_due_date_of_when_it_was_given(
    lifecycle: Lifecycle,
) -> None:
    """consent-ledger derives grants from a capture whenever it gets to it; that lag must not
    move the due date, or a replay (which sees the late grant before ticking) would differ."""
    lead = await lifecycle.capture()
    subject = lead["subject_id"]
    await due(lifecycle, subject)
    grant = await lifecycle.stack.wait_for_event(
        "consent-events", lambda e: e.type == "consent.granted" and e.subject_id == subject
    )
    captured = await lifecycle.stack.wait_for_event(
        "lead-events", lambda e: e.type == "lead.captured" and e.subject_id == subject
    )
    late = grant.model_copy(update={"occurred_at": grant.occurred_at + timedelta(days=731)})
    runtime = lifecycle.stack.runtimes["retention_scheduler"]
    scratch = f"{runtime.settings.mongo_db}_late"
    store = RetentionStore(runtime.mongo[scratch])
    await store.ensure_indexes()
    recorder = RecordingPublisher(lifecycle.scheduler.publisher)
    handlers = RetentionHandlers(runtime.registry, recorder, store)
    await handlers.on_events([captured])
    await handlers.on_events([late])
    lifecycle.clock.advance(timedelta(days=731))
    assert await Scheduler(store, recorder, lifecycle.clock).tick() == 1
    await runtime.mongo.drop_database(scratch)


async def test_a_tenant_may_shorten_never_lengthen(lifecycle: Lifecycle) -> None:
    lead = await lifecycle.capture()
    subject = lead["subject_id"]
    await due(lifecycle, subject)
    with pytest.raises(PolicyError, match="only shorten"):
        await set_policy(
            lifecycle.operator,
            lifecycle.stack.config_dir,
            tenant_id="acme",
            category="lead_data",
            period_days=800,
            set_by="ops",
        )
    await set_policy(
        lifecycle.operator,
        lifecycle.stack.config_dir,
        tenant_id="acme",
        category="lead_data",
        period_days=30,
        set_by="ops",
    )

    async def shortened() -> Any:
        document = await due(lifecycle, subject)
        return document if document["period_days"] == 30 else None

    await eventually(shortened, what="the schedule to follow the new policy")
    lifecycle.clock.advance(timedelta(days=31))
    assert await lifecycle.scheduler.tick() == 1
    await completed(lifecycle, subject)


async def test_a_legal_hold_stops_expiry_and_defers_an_erasure_until_released(
    lifecycle: Lifecycle,
) -> None:
    """Placed, listed and released with ``leadtrail holds``, as an operator does."""
    cli = lifecycle.stack.cli
    lead = await lifecycle.capture()
    subject = lead["subject_id"]
    await due(lifecycle, subject)
    with pytest.raises(OperatorError):
        await place_hold(
            lifecycle.operator, tenant_id="acme", subject_id=subject, reason=" ", placed_by="legal"
        )
    placed = await cli(
        "holds", "place", "--tenant", "acme", "--subject", subject,
        "--reason", "Litigation 2026/118", "--by", "legal@acme",
    )  # fmt: skip
    assert placed.exit_code == 0, placed.output
    hold_id = placed.stdout.split()[1]
    await eventually(
        lambda: lifecycle.scheduler.store.holds.find_one({"_id": hold_id}),
        what="the hold to reach retention-scheduler",
    )
    await eventually(
        lambda: lifecycle.propagator.store.holds.find_one({"_id": hold_id}),
        what="the hold to reach erasure-propagator",
    )
    listed = await cli("holds", "list", "--tenant", "acme", "--json")
    assert [json.loads(line) for line in listed.stdout.splitlines()] == [
        {
            "hold_id": hold_id,
            "active": True,
            "scope": "subject",
            "subject_id": subject,
            "reason": "Litigation 2026/118",
        }
    ]
    lifecycle.clock.advance(timedelta(days=800))
    assert await lifecycle.scheduler.tick() == 0, "nothing under hold expires"

    await lifecycle.request("erasure", lead["lead_id"])
    deferred = await lifecycle.stack.wait_for_event(
        "erasure-events", lambda e: e.type == "erasure.deferred"
    )
    assert deferred.data["hold_ids"] == [hold_id]
    view = await lifecycle.stack.get_json("lead_ingest", f"/v1/leads/{lead['lead_id']}")
    assert view["contact"]["email"] == "maria.rossi@example.org", "held data stays readable"

    mistyped = await cli("holds", "release", hold_id[:-1], "--tenant", "acme", "--by", "legal")
    assert mistyped.exit_code == 1
    assert f"no hold {hold_id[:-1]!r} in tenant 'acme'" in mistyped.stderr
    released = await cli(
        "holds", "release", hold_id, "--tenant", "acme", "--by", "legal@acme",
        "--reason", "case closed",
    )  # fmt: skip
    assert released.exit_code == 0, released.output
    assert f"hold {hold_id} released on {subject}" in released.stdout
    release = await lifecycle.stack.wait_for_event(
        "retention-events", lambda e: e.type == "retention.hold_released"
    )
    assert release.subject_id == subject, "the release travels under the placement's subject"
    done = await completed(lifecycle, subject)
    assert done.data["erasure_id"] == deferred.data["erasure_id"]
    assert done.data["trigger"]["kind"] == "privacy_request"

    again = await cli("holds", "release", hold_id, "--tenant", "acme", "--by", "legal")
    assert again.exit_code == 1
    assert "already released" in again.stderr
    assert (await cli("holds", "list", "--tenant", "acme")).stdout == ""
    everything = await cli("holds", "list", "--tenant", "acme", "--all")
    assert f"{hold_id}  released" in everything.stdout


async def test_a_release_published_under_another_key_still_runs_the_deferred_erasure(
    lifecycle: Lifecycle,
) -> None:
    """A release counts by hold id in every service, whatever key it travelled under (another
    producer than ``leadtrail`` may not derive it from the placement): the erasure it was
    holding back runs."""
    lead = await lifecycle.capture()
    subject = lead["subject_id"]
    hold = await place_hold(
        lifecycle.operator, tenant_id="acme", subject_id=subject, reason="Case 7", placed_by="l"
    )
    await eventually(
        lambda: lifecycle.propagator.store.holds.find_one({"_id": hold.data["hold_id"]}),
        what="the hold to reach erasure-propagator",
    )
    await lifecycle.request("erasure", lead["lead_id"])
    deferred = await lifecycle.stack.wait_for_event(
        "erasure-events", lambda e: e.type == "erasure.deferred"
    )
    await release_hold(
        lifecycle.operator,
        tenant_id="acme",
        subject_id="sub_someone_else",
        hold_id=hold.data["hold_id"],
        released_by="legal",
    )
    done = await completed(lifecycle, subject)
    assert done.data["erasure_id"] == deferred.data["erasure_id"]


@pytest.mark.parametrize(
    "lifecycle",
    [
        {
            "erasure_receipts": [
                "lead-ingest",
                "consent-ledger",
                "retention-scheduler",
                "crm-sync",
                "archive",
            ]
        }
    ],
    indirect=True,
)
async def test_an_erasure_missing_a_receipt_past_its_deadline_is_overdue(
    lifecycle: Lifecycle,
) -> None:
    lead = await lifecycle.capture()
    accepted = await lifecycle.request("erasure", lead["lead_id"])
    await lifecycle.stack.wait_for_event("erasure-events", lambda e: e.type == "erasure.requested")

    async def four_receipts() -> Any:
        document = await lifecycle.propagator.store.erasures.find_one({})
        return document if document and len(document["receipts"]) == 4 else None

    await eventually(four_receipts, what="the four receipts")
    assert await lifecycle.propagator.check_overdue() == 0, "the deadline has not passed"
    samples = await erasure_metrics(lifecycle)
    assert erasures(samples, "leadtrail_erasures_open", state="requested") == 1
    assert erasures(samples, "leadtrail_erasures_past_deadline", state="requested") == 0
    lifecycle.clock.advance(timedelta(days=15))
    samples = await erasure_metrics(lifecycle)
    assert erasures(samples, "leadtrail_erasures_open", state="requested") == 1
    assert erasures(samples, "leadtrail_erasures_past_deadline", state="requested") == 1
    count = "leadtrail_erasure_completion_seconds_count"
    assert erasures(samples, count, trigger="privacy_request") is None, "never completed"
    assert await lifecycle.propagator.check_overdue() == 1
    assert await lifecycle.propagator.check_overdue() == 0, "raised once"
    overdue = await lifecycle.stack.wait_for_event(
        "erasure-events", lambda e: e.type == "erasure.overdue"
    )
    assert overdue.data["missing_receipts"] == ["archive"]
    assert datetime.fromisoformat(overdue.data["deadline"]) == datetime.fromisoformat(
        accepted["deadline"]
    )
    view = await request_view(lifecycle, accepted["request_id"], "overdue")
    assert view["missing_receipts"] == ["archive"]
    assert view["completed_at"] is None
    assert {r["service"] for r in view["receipts"]} == set(), "no erasure.completed yet"


async def request_view(lifecycle: Lifecycle, request_id: str, status: str) -> dict[str, Any]:
    """``GET /v1/privacy-requests/{id}`` once the request reached ``status``."""
    view: dict[str, Any] = await lifecycle.stack.get_json(
        "lead_ingest", f"/v1/privacy-requests/{request_id}", until=lambda v: v["status"] == status
    )
    return view


async def test_rectification_reaches_every_projection_with_receipts(lifecycle: Lifecycle) -> None:
    lead = await lifecycle.capture()
    accepted = await lifecycle.request(
        "rectification",
        lead["lead_id"],
        corrections={"email": "Maria.Bianchi@Example.org", "last_name": "Bianchi"},
    )
    done = await lifecycle.stack.wait_for_event(
        "erasure-events", lambda e: e.type == "rectification.completed"
    )
    assert {r["service"] for r in done.data["receipts"]} == {"lead-ingest", "crm-sync"}
    view = await request_view(lifecycle, accepted["request_id"], "completed")
    assert {r["service"] for r in view["receipts"]} == {"lead-ingest", "crm-sync"}
    assert view["completed_at"] is not None
    view = await lifecycle.stack.get_json(
        "lead_ingest",
        f"/v1/leads/{lead['lead_id']}",
        until=lambda v: v["contact"]["last_name"] == "Bianchi",
    )
    assert view["contact"]["email"] == "Maria.Bianchi@example.org"
    assert view["contact"]["first_name"] == "Maria", "fields not corrected stay"
    again = await lifecycle.capture("maria.bianchi@example.org")
    assert again["subject_id"] == lead["subject_id"], "the corrected e-mail links the person"


async def test_after_erasure_nothing_personal_is_left_anywhere(lifecycle: Lifecycle) -> None:
    secrets_of_maria = ["maria.rossi@example.org", "+393471234567", "3471234567", "Rossi", "Maria"]
    lead = await lifecycle.capture()
    subject = lead["subject_id"]
    client = lifecycle.stack.client("lead_ingest")
    await client.post(
        f"/v1/leads/{lead['lead_id']}/interactions",
        json={
            "channel": "whatsapp",
            "answers": {"budget": 15000, "role": "owner"},
            "summary": "Maria Rossi wants a quote",
        },
        headers=lifecycle.stack.auth(),
    )
    await lifecycle.stack.get_json(
        "lead_ingest", f"/v1/leads/{lead['lead_id']}", until=lambda v: v["score"]
    )
    before = await lifecycle.stack.get_json("lead_ingest", "/v1/aggregates")
    await lifecycle.request("erasure", lead["lead_id"])
    await completed(lifecycle, subject)
    await lifecycle.stack.get_json(
        "lead_ingest", f"/v1/leads/{lead['lead_id']}", until=lambda v: v["state"] == "erased"
    )

    db = lifecycle.stack.runtimes["lead_ingest"].db
    for name in await db.list_collection_names():
        dump = json.dumps([d async for d in db[name].find({})], default=str)
        for secret in secrets_of_maria:
            assert secret not in dump, f"{secret!r} left in collection {name}"

    cipher = lifecycle.stack.runtimes["erasure_propagator"].cipher
    audit: list[str] = []
    for topic in (
        "lead-events",
        "consent-events",
        "privacy-events",
        "retention-events",
        "erasure-events",
        "crm-events",
        "crm-sync",
        "dead-letters",
    ):
        for event in await lifecycle.stack.events(topic):
            raw = event.model_dump_json()
            for secret in secrets_of_maria:
                assert secret not in raw, f"{secret!r} in clear on {topic}"
            if event.subject_id == subject and event.pii is not None:
                assert await cipher.decrypt(event) is None, f"{event.type} still decrypts"
            if event.subject_id == subject:
                audit.append(event.type)
    assert {
        "lead.captured",
        "lead.interaction_recorded",
        "lead.scored",
        "consent.granted",
        "privacy.request.received",
        "erasure.requested",
        "erasure.completed",
    } <= set(audit)
    after = await lifecycle.stack.get_json("lead_ingest", "/v1/aggregates")
    assert after == before, "anonymous aggregates survive (R19)"


async def erased(lifecycle: Lifecycle) -> dict[str, Any]:
    """A captured lead whose erasure completed, seen as erased by lead-ingest."""
    lead = await lifecycle.capture()
    await lifecycle.request("erasure", lead["lead_id"])
    await completed(lifecycle, lead["subject_id"])
    await lifecycle.stack.get_json(
        "lead_ingest", f"/v1/leads/{lead['lead_id']}", until=lambda v: v["state"] == "erased"
    )
    return lead


async def live_key(lifecycle: Lifecycle, subject_id: str) -> bool:
    keys = lifecycle.stack.runtimes["erasure_propagator"].db["data_keys"]
    pointer = await keys.find_one({"_id": f"current:acme/{subject_id}"})
    return pointer is not None and not pointer.get("destroyed")


async def test_an_erased_lead_takes_no_new_personal_data(lifecycle: Lifecycle) -> None:
    lead = await erased(lifecycle)
    subject, auth = lead["subject_id"], lifecycle.stack.auth()
    writes = [
        (
            "lead_ingest",
            f"/v1/leads/{lead['lead_id']}/interactions",
            {"channel": "phone", "answers": {"home_address": "Via Roma 1, Milano"}},
        ),
        (
            "lead_ingest",
            f"/v1/leads/{lead['lead_id']}/score-reviews",
            {"score": 90, "reviewer": "sales@acme", "reason": "met Maria at the fair"},
        ),
        (
            "lead_ingest",
            "/v1/privacy-requests",
            {
                "type": "rectification",
                "subject": {"lead_id": lead["lead_id"]},
                "verification": {"method": "tenant_attestation", "attested_by": "dpo@acme"},
                "corrections": {"last_name": "Bianchi"},
            },
        ),
        (
            "consent_ledger",
            f"/v1/subjects/{subject}/consents",
            {
                "purpose": "marketing_email",
                "channel": "email",
                "notice_version": "2026-11",
                "given_at": "2026-11-02T09:00:00Z",
                "ip": "203.0.113.7",
            },
        ),
    ]
    for service, path, body in writes:
        response = await lifecycle.stack.client(service).post(path, json=body, headers=auth)
        assert response.status_code == 410, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"].endswith("lead-erased")
    assert not await live_key(lifecycle, subject), "no new key generation"
    published = [
        event.type
        for topic in ("lead-events", "consent-events", "privacy-events")
        for event in await lifecycle.stack.events(topic)
        if event.subject_id == subject
        and event.type
        in ("lead.interaction_recorded", "lead.score_reviewed", "privacy.request.received")
    ]
    assert published == ["privacy.request.received"], "only the erasure request itself"


async def test_a_rectification_that_slipped_past_an_erasure_is_not_applied(
    lifecycle: Lifecycle,
) -> None:
    """Accepted just after the keys were destroyed, before lead-ingest knew: its corrections
    came under a new key generation. erasure-propagator destroys that too, rectifies nothing."""
    lead = await erased(lifecycle)
    subject = lead["subject_id"]
    publisher = lifecycle.stack.runtimes["lead_ingest"].publisher
    received = await publisher.publish(
        privacy.PrivacyRequestReceivedV1(
            request_id="pr_late",
            request_type="rectification",
            relayed_by_tenant=True,
            subject_known=True,
            identified_by=["lead_id"],
            deadline=lifecycle.clock.now() + timedelta(days=30),
            verification="tenant_attestation",
            rectify_fields=["last_name"],
        ),
        pii=privacy.PrivacyRequestContactV1(corrections={"last_name": "Bianchi"}),
        tenant_id="acme",
        subject_id=subject,
        correlation_id="corr-late-rectification",
    )
    assert await live_key(lifecycle, subject), "the late request made a new generation"
    await publisher.publish(
        privacy.PrivacyRequestVerifiedV1(
            request_id="pr_late", request_type="rectification", method="tenant_attestation"
        ),
        tenant_id="acme",
        subject_id=subject,
        correlation_id=received.correlation_id,
    )

    async def destroyed_again() -> bool | None:
        return None if await live_key(lifecycle, subject) else True

    await eventually(destroyed_again, what="the new generation destroyed")
    assert await lifecycle.stack.runtimes["erasure_propagator"].cipher.decrypt(received) is None
    rectified = [
        e
        for e in await lifecycle.stack.events("lead-events")
        if e.type == "lead.rectified" and e.subject_id == subject
    ]
    assert rectified == []


async def test_every_request_type_reaches_completed_with_its_receipts(
    lifecycle: Lifecycle,
) -> None:
    lead = await lifecycle.capture()
    restriction = await lifecycle.request("restriction", lead["lead_id"])
    objection = await lifecycle.request("objection", lead["lead_id"], purposes=["profiling"])
    for accepted in (restriction, objection):
        view = await request_view(lifecycle, accepted["request_id"], "completed")
        assert view["completed_at"] is not None
    shown = await lifecycle.stack.get_json("lead_ingest", f"/v1/leads/{lead['lead_id']}")
    assert shown["processing"]["restricted"], "still a consent fact, too"
    assert shown["processing"]["objections"] == ["profiling"]
    erasure = await lifecycle.request("erasure", lead["lead_id"])
    done = await completed(lifecycle, lead["subject_id"])
    view = await request_view(lifecycle, erasure["request_id"], "completed")
    assert [(r["service"], r["actions"]) for r in view["receipts"]] == [
        (r["service"], r["actions"]) for r in done.data["receipts"]
    ]
    for shown, receipt in zip(view["receipts"], done.data["receipts"], strict=True):
        at = datetime.fromisoformat(shown["at"]) - datetime.fromisoformat(receipt["at"])
        assert abs(at) < timedelta(milliseconds=1), "when each service confirmed"
    assert {r["service"] for r in view["receipts"]} == {
        "lead-ingest",
        "consent-ledger",
        "retention-scheduler",
        "crm-sync",
    }
    assert view["missing_receipts"] == []
