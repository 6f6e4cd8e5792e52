"""A tenant's workload against the running processes, and the reconciliation after it.

:class:`Workload` behaves like a careful real client: every lead is posted with an
``Idempotency-Key`` and retried with the same key on ``503``, ``409 request-in-progress``,
``5xx`` and connection errors (a killed or restarting service, Kafka or MongoDB away), so
"acknowledged" means one thing: a ``202`` came back. :meth:`Workload.reconcile` then checks
what the system promised for exactly those leads.

Each workload tags its e-mail addresses with a run id, so several workloads can share one
cluster (and one fake CRM) and each counts only its own people.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from contracts import EventEnvelope
from tests.e2e.stack import E2EStack
from tests.helpers import eventually
from tests.integration.crm_sync.test_crm_push import QUALIFYING
from tests.integration.lead_ingest.conftest import sample_lead

__all__ = ["ALL_RECEIPTS", "Person", "Workload"]

ALL_RECEIPTS = {"lead-ingest", "consent-ledger", "retention-scheduler", "crm-sync"}
RETRY_STATUSES = frozenset({409, 500, 502, 503, 504})
RETRY_WITHIN_S = 240.0


@dataclass
class Person:
    """One lead of the workload and what is done with it."""

    n: int
    email: str
    crm_consent: bool = True
    qualify: bool = True
    unsubscribe: bool = False
    erase: bool = False
    lead_id: str | None = None
    subject_id: str | None = None

    @property
    def expected_in_crm(self) -> bool:
        return self.crm_consent and self.qualify and not self.erase


@dataclass
class Workload:
    stack: E2EStack
    tenant: str = "acme"
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    people: list[Person] = field(default_factory=list)
    retries: Counter[str] = field(default_factory=Counter)

    # -- HTTP like a real client ---------------------------------------------------------
    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        retry_404: bool = False,
        failed_attempts: list[str] | None = None,
    ) -> httpx.Response:
        """The first answer that is not worth retrying (404 too when ``retry_404``: a read
        model that has not caught up yet). The reasons of the attempts retried are appended
        to ``failed_attempts`` when given."""
        client = self.stack.client(service)
        all_headers = {**self.stack.cluster.auth(self.tenant), **(headers or {})}
        deadline = time.monotonic() + RETRY_WITHIN_S
        while True:
            try:
                response = await client.request(method, path, json=json, headers=all_headers)
            except httpx.TransportError as error:
                reason = type(error).__name__
            else:
                retry = response.status_code in RETRY_STATUSES or (
                    retry_404 and response.status_code == 404
                )
                if not retry:
                    return response
                reason = str(response.status_code)
            self.retries[reason] += 1
            if failed_attempts is not None:
                failed_attempts.append(reason)
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path} still failing ({reason}) after retries")
            await asyncio.sleep(0.25)

    # -- one person's story --------------------------------------------------------------
    def person(self, **plan: Any) -> Person:
        n = len(self.people)
        person = Person(n, f"p{n}.{self.run}@example.org", **plan)
        self.people.append(person)
        return person

    async def capture(self, person: Person) -> None:
        body = sample_lead(person.email)
        body["contact"].pop("phone")  # a shared phone number would link everyone to one person
        body["contact"]["last_name"] = f"Rossi{person.n}x{self.run}"
        if not person.crm_consent:
            body["consent"]["purposes"] = ["marketing_email"]
        response = await self.call(
            "lead_ingest",
            "POST",
            "/v1/leads",
            json=body,
            headers={"Idempotency-Key": f"{self.run}-{person.n}"},
        )
        assert response.status_code == 202, response.text
        accepted = response.json()
        person.lead_id, person.subject_id = accepted["lead_id"], accepted["subject_id"]

    async def live(self, person: Person) -> None:
        """Capture, then (as planned) qualify, unsubscribe from marketing and erase."""
        await self.capture(person)
        if person.qualify:
            # Not idempotent: a retry after a lost answer may record the answers twice, which
            # changes nothing here (same answers, and a lead is qualified once).
            answered = await self.call(
                "lead_ingest",
                "POST",
                f"/v1/leads/{person.lead_id}/interactions",
                json={"channel": "phone", "answers": QUALIFYING},
                retry_404=True,
            )
            assert answered.status_code == 202, answered.text
        if person.unsubscribe:
            await self.unsubscribe(person, "marketing_email")
        if person.erase:
            if person.qualify:
                await self.lead(person, until=lambda view: view["state"] == "qualified")
            await self.erase(person)

    async def unsubscribe(self, person: Person, purpose: str) -> dict[str, Any]:
        link = await self.call(
            "consent_ledger",
            "POST",
            f"/v1/subjects/{person.subject_id}/unsubscribe-links",
            json={"purpose": purpose},
            retry_404=True,
        )
        assert link.status_code == 201, link.text
        token = link.json()["token"]
        attempts: list[str] = []
        clicked = await self.call(
            "consent_ledger",
            "POST",
            f"/v1/unsubscribe/{token}",
            headers={"Accept": "application/json"},
            failed_attempts=attempts,
        )
        body: dict[str, Any] = clicked.json()
        if attempts and clicked.status_code == 200:
            # A retry after a lost answer (the service killed mid-request) finds the click
            # already applied: the idempotent answer, not a failure.
            assert body["status"] == "already_withdrawn", clicked.text
        else:
            assert clicked.status_code == 202, clicked.text
        return body

    async def erase(self, person: Person) -> dict[str, Any]:
        response = await self.call(
            "lead_ingest",
            "POST",
            "/v1/privacy-requests",
            json={
                "type": "erasure",
                "subject": {"lead_id": person.lead_id},
                "verification": {"method": "tenant_attestation", "attested_by": "dpo@acme"},
            },
            retry_404=True,
        )
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body

    async def lead(self, person: Person, until: Any = None) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            response = await self.call("lead_ingest", "GET", f"/v1/leads/{person.lead_id}")
            if response.status_code != 200:
                return None
            view: dict[str, Any] = response.json()
            return view if until is None or until(view) else None

        return await eventually(probe, within=120, what=f"lead {person.lead_id}")

    # -- running many --------------------------------------------------------------------
    async def run_people(self, people: list[Person], concurrency: int = 4) -> None:
        queue: asyncio.Queue[Person] = asyncio.Queue()
        for person in people:
            queue.put_nowait(person)

        async def worker() -> None:
            while not queue.empty():
                await self.live(queue.get_nowait())

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    def mixed(self, count: int) -> list[Person]:
        """``count`` more people in a fixed mix, by their number n: most qualify with CRM
        consent; every fifth gives no CRM consent, every seventh unsubscribes from marketing,
        every sixth is erased, every eleventh is never qualified."""
        people = []
        for _ in range(count):
            n = len(self.people)
            people.append(
                self.person(
                    crm_consent=n % 5 != 4,
                    qualify=n % 11 != 10,
                    unsubscribe=n % 7 == 3,
                    erase=n % 6 == 5,
                )
            )
        return people

    # -- what must hold afterwards -------------------------------------------------------
    def acknowledged(self) -> list[Person]:
        return [person for person in self.people if person.lead_id is not None]

    def in_crm(self) -> dict[str, str]:
        """This run's people in the fake CRM: e-mail -> record id (a duplicate fails)."""
        found: dict[str, str] = {}
        for record_id, properties in self.stack.hubspot.records.items():
            email = properties.get("email", "")
            if email.endswith(f".{self.run}@example.org"):
                assert email not in found, f"two CRM records for {email}"
                found[email] = record_id
        return found

    async def completed_erasures(self) -> dict[str, EventEnvelope]:
        return {
            event.subject_id: event
            for event in await self.stack.events("erasure-events")
            if event.type == "erasure.completed"
        }

    async def reconcile(self, within: float = 240.0) -> dict[str, int]:
        """Every acknowledged lead is in the read model; exactly the qualified, consenting,
        not erased ones are in the CRM, once; every erasure completed with all receipts and
        left no CRM record. Returns the counts."""
        acked = self.acknowledged()
        assert acked, "the workload acknowledged nothing"
        assert len({p.lead_id for p in acked}) == len(acked), "one lead id per acknowledged lead"
        for person in acked:
            view = await self.lead(
                person,
                until=lambda v, p=person: (
                    (v["state"] == "erased" if p.erase else v["state"] != "erased")
                    and (v["state"] in ("qualified", "erased") if p.qualify else True)
                ),
            )
            assert view["lead_id"] == person.lead_id
        subjects = {str(p.subject_id) for p in acked}
        captured = {
            event.data["lead_id"]
            for event in await self.stack.events("lead-events")
            if event.type == "lead.captured" and event.subject_id in subjects
        }
        assert captured == {p.lead_id for p in acked}, "retries never made a second lead"
        erased = {str(p.subject_id) for p in acked if p.erase}

        async def erasures_done() -> dict[str, EventEnvelope] | None:
            done = await self.completed_erasures()
            return done if erased <= set(done) else None

        try:
            done = await eventually(erasures_done, within=within, what="every erasure completed")
        except AssertionError as error:
            raise AssertionError(f"{error}: {await self._erasure_report(erased)}") from None
        for subject in erased:
            receipts = {receipt["service"] for receipt in done[subject].data["receipts"]}
            assert receipts == ALL_RECEIPTS, f"erasure of {subject}: receipts {receipts}"
        expected = {p.email for p in acked if p.expected_in_crm}

        async def crm_settled() -> dict[str, str] | None:
            found = self.in_crm()
            return found if set(found) == expected else None

        try:
            await eventually(crm_settled, within=within, what="the CRM to hold exactly the leads")
        except AssertionError:
            found = set(self.in_crm())
            raise AssertionError(
                f"CRM: missing {sorted(expected - found)[:10]}, "
                f"unexpected {sorted(found - expected)[:10]}; "
                f"crm-sync's queue for them: {await self._outbox_report(expected ^ found)}"
            ) from None
        async with self.stack.mongo() as db:
            in_read_model = await db["leads"].count_documents(
                {"tenant_id": self.tenant, "subject_id": {"$in": sorted(subjects)}}
            )
        return {
            "accepted": len(acked),
            "in_read_model": in_read_model,
            "in_crm": len(expected),
            "erased": len(erased),
        }

    async def _erasure_report(self, subjects: set[str]) -> str:
        """What the erasure topic shows for subjects whose erasure did not complete."""
        events = await self.stack.events("erasure-events")
        completed = {e.subject_id for e in events if e.type == "erasure.completed"}
        lines = []
        for subject in sorted(subjects - completed):
            seen = [
                e.type + (f"({e.data['service']})" if e.type == "erasure.receipt" else "")
                for e in events
                if e.subject_id == subject
            ]
            lines.append(f"{subject}: {seen or 'no erasure event'}")
        return "; ".join(lines)

    async def _outbox_report(self, emails: set[str]) -> list[dict[str, Any]]:
        """crm-sync's outbox entries (state, reason, cause) of the people with these e-mails."""
        leads = [p.lead_id for p in self.people if p.email in emails]
        async with self.stack.mongo() as db:
            entries = await db["crm_outbox"].find({"lead_id": {"$in": leads}}).to_list(None)
        return [
            {
                "lead_id": entry.get("lead_id"),
                "state": entry.get("state"),
                "operation": entry.get("operation"),
                "reason": entry.get("reason"),
                "cause": (entry.get("cause") or {}).get("type"),
                "last_error": entry.get("last_error"),
            }
            for entry in entries
        ]
