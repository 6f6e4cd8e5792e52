"""The privacy operations console in Chromium: what a DPO and an operator do with it.

Each test drives the real pages against a real stack; every page visited is screenshotted
into ``test-artifacts/console/`` and passes axe-core without a serious violation.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from playwright.async_api import Page, expect

from contracts.dead_letter import DeadLetterV1
from contracts.topics import DEAD_LETTERS
from tests.browser.conftest import Console
from tests.helpers import eventually

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


async def reload_until(page: Page, ready: Callable[[], Awaitable[bool]], what: str) -> None:
    """Reload ``page`` until ``ready`` says what it waits for is on it (read models and the
    log catch up asynchronously: the console shows what they hold now)."""

    async def probe() -> bool | None:
        await page.reload()
        return True if await ready() else None

    await eventually(probe, within=60, what=what)


async def place_hold(page: Page, console: Console, subject_id: str, reason: str) -> str:
    """Place a hold on the acme subject through the Retention page; its id once listed."""
    await page.goto(f"{console.url}/retention")
    acme = page.locator("section", has=page.get_by_role("heading", name="acme", exact=True))
    await acme.get_by_label("Subject id (empty: the whole tenant)").fill(subject_id)
    await acme.get_by_label("Reason", exact=True).fill(reason)
    await acme.get_by_role("button", name="Place hold in acme").click()
    await expect(page.get_by_role("status")).to_contain_text("hold placed")
    found = re.search(r"hold_[0-9a-f]{16}", await page.get_by_role("status").inner_text())
    assert found is not None
    hold = found.group(0)
    await reload_until(page, page.get_by_role("row").filter(has_text=hold).is_visible, "hold")
    return hold


async def test_a_dpo_watches_an_erasure_go_from_received_to_completed(console: Console) -> None:
    """The DPO holds the subject first, so the erasure visibly waits; releasing the hold
    lets it run, and the page shows each service's receipt as it comes."""
    lead = await console.capture()
    page = await console.login("dpo@acme.test")
    await console.check(page, "login-landing-requests")
    hold = await place_hold(page, console, lead["subject_id"], "tax audit of 2026")
    request = await console.erasure_request(lead["lead_id"])

    await page.goto(f"{console.url}/requests")
    row = page.get_by_role("row").filter(has_text=request["request_id"])
    await reload_until(
        page,
        row.get_by_text("waiting for lead-ingest").is_visible,
        "the erasure to wait under the hold",
    )
    await expect(row.get_by_text("verified", exact=True)).to_be_visible()
    await expect(row.get_by_text("completed", exact=True)).to_have_count(0)
    await console.check(page, "requests-waiting")

    await page.goto(f"{console.url}/retention")
    held = page.get_by_role("row").filter(has_text=hold)
    await held.get_by_label("Reason for release").fill("audit closed")
    await held.get_by_role("button", name=f"Release {hold}").click()
    await expect(page.get_by_role("status")).to_contain_text(f"hold {hold} released")

    await page.goto(f"{console.url}/requests")
    await reload_until(
        page,
        row.get_by_text("completed", exact=True).is_visible,
        "the erasure to show as completed",
    )
    for service in ("lead-ingest", "consent-ledger", "retention-scheduler", "crm-sync"):
        await expect(row.get_by_text(re.compile(rf"^{service} ✓"))).to_be_visible()
    await expect(row.get_by_text("waiting for")).to_have_count(0)
    await console.check(page, "requests")

    csv = await page.context.request.get(f"{console.url}/requests.csv")
    assert csv.ok
    body = await csv.text()
    assert request["request_id"] in body
    assert "maria" not in body.lower()  # the register holds ids and times, no personal data

    await row.get_by_role("link", name=request["request_id"]).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(lead["subject_id"])
    await expect(page.get_by_text("Erased: the subject's key was destroyed")).to_be_visible()
    timeline = page.locator("table.timeline")
    await expect(timeline.get_by_text("erasure.completed")).to_be_visible()
    await expect(timeline.get_by_text("maria.rossi@example.org")).to_have_count(0)
    await console.check(page, "subject-after-erasure")


async def test_the_subject_page_shows_personal_data_only_there(console: Console) -> None:
    lead = await console.capture(email="luca.bianchi@example.org")
    page = await console.login("dpo@acme.test")
    await page.get_by_role("link", name="Subject").click()
    await console.check(page, "find-subject")
    await page.get_by_label("Subject id or lead id").fill(lead["lead_id"])
    await page.get_by_role("button", name="Open").click()
    await page.wait_for_url(re.compile(rf".*/subjects/acme/{lead['subject_id']}$"))
    assert "luca" not in page.url
    await expect(page.get_by_text("luca.bianchi@example.org").first).to_be_visible()
    await expect(page.locator("section#s-consents")).to_be_visible()
    await console.check(page, "subject")
    await page.goto(f"{console.url}/subjects/acme/{lead['lead_id']}")  # a lead's page
    await page.wait_for_url(re.compile(rf".*/subjects/acme/{lead['subject_id']}$"))


async def test_an_operator_places_and_releases_a_legal_hold(console: Console) -> None:
    page = await console.login("ops@leadtrail.test")
    await page.get_by_role("link", name="Retention and holds").click()
    await console.check(page, "retention")
    acme = page.locator("section", has=page.get_by_role("heading", name="acme", exact=True))
    await acme.get_by_label("Reason", exact=True).fill("litigation 2026-114")
    await acme.get_by_role("button", name="Place hold in acme").click()
    await expect(page.get_by_role("status")).to_contain_text("hold placed")
    hold_id = re.search(r"hold_[0-9a-f]{16}", await page.get_by_role("status").inner_text())
    assert hold_id is not None
    hold = hold_id.group(0)

    placed = await console.stack.wait_for_event(
        "retention-events",
        lambda e: e.type == "retention.hold_placed" and e.data.get("hold_id") == hold,
    )
    assert placed.data["placed_by"] == "console:ops@leadtrail.test"
    assert placed.tenant_id == "acme"

    row = page.get_by_role("row").filter(has_text=hold)
    await reload_until(page, row.is_visible, "the hold to be listed")
    await console.check(page, "retention-with-hold")
    await row.get_by_label("Reason for release").fill("case settled")
    await row.get_by_role("button", name=f"Release {hold}").click()
    await expect(page.get_by_role("status")).to_contain_text(f"hold {hold} released")
    released = await console.stack.wait_for_event(
        "retention-events",
        lambda e: e.type == "retention.hold_released" and e.data.get("hold_id") == hold,
    )
    assert released.data["released_by"] == "console:ops@leadtrail.test"

    async def gone() -> bool:
        return await page.get_by_role("row").filter(has_text=hold).count() == 0

    await reload_until(page, gone, "the hold to leave the list")


async def test_an_operator_redrives_a_dead_letter(console: Console) -> None:
    """A letter of a record on a topic nobody consumes (so the redrive is all that happens)."""
    stack = console.stack
    bootstrap, prefix = stack.base["kafka_bootstrap"], stack.base["topic_prefix"]
    source = f"{prefix}console-redrive-{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(source, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    letter = DeadLetterV1(
        failed_at=stack.runtimes["crm_sync"].clock.now(),
        service="crm-sync",
        consumer_group="crm-sync.outbox/hubspot-main",
        source_topic=source,
        source_partition=0,
        source_offset=0,
        key_b64=base64.b64encode(b"sub_1").decode(),
        value_b64=base64.b64encode(b'{"a": "record"}').decode(),
        headers={"type": "lead.qualified"},
        error_type="CrmError(422)",
        error_message="upsert on hubspot-main: property missing",
        attempts=3,
        event_type="lead.qualified",
        tenant_id="acme",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            f"{prefix}{DEAD_LETTERS.name}", letter.model_dump_json().encode(), key=b"sub_1"
        )
    finally:
        await producer.stop()

    page = await console.login("ops@leadtrail.test")
    await page.get_by_role("link", name="CRM").click()
    row = page.get_by_role("row").filter(has_text="property missing")
    await expect(row).to_be_visible()
    await console.check(page, "crm")
    await row.get_by_role("button", name=f"Redrive {letter.id[:8]}").click()
    await expect(page.get_by_role("status")).to_contain_text(f"dead letter {letter.id}")
    await expect(
        page.get_by_role("row").filter(has_text="property missing").get_by_text("redriven")
    ).to_be_visible()

    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await consumer.getone()
    finally:
        await consumer.stop()
    headers = dict(record.headers)
    assert record.value == b'{"a": "record"}'
    assert headers["redriven_from"] == letter.id.encode()
    assert headers["redriven_by"] == b"console:ops@leadtrail.test"
    recorded = await stack.wait_for_event(
        "operator-events", lambda e: e.type == "operator.dead_letter_redriven"
    )
    assert recorded.data["letter_id"] == letter.id
    assert recorded.data["redriven_by"] == "console:ops@leadtrail.test"

    globex = await console.login("dpo@globex.test")
    await globex.goto(f"{console.url}/crm")
    await expect(globex.get_by_text("property missing")).to_have_count(0)


async def test_a_dpo_sees_nothing_of_another_tenant(console: Console) -> None:
    lead = await console.capture()
    request = await console.erasure_request(lead["lead_id"])
    page = await console.login("dpo@globex.test")
    await expect(page.get_by_text(request["request_id"])).to_have_count(0)
    await expect(page.get_by_label("Tenant")).to_have_count(0)  # one tenant: no tenant filter

    for path in (
        f"/subjects/acme/{lead['subject_id']}",
        f"/subject?tenant=acme&ref={lead['lead_id']}",
        "/requests?tenant=acme",
        "/retention?tenant=acme",
    ):
        response = await page.goto(f"{console.url}{path}")
        assert response is not None
        assert response.status == 404, path
    await console.check(page, "not-found")

    await page.goto(f"{console.url}/retention")
    await expect(page.get_by_role("heading", name="acme")).to_have_count(0)
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    forged = await page.context.request.post(
        f"{console.url}/holds",
        form={"csrf": csrf or "", "tenant": "acme", "reason": "not mine"},
        max_redirects=0,
    )
    assert forged.status == 404


async def test_logins_sessions_and_forms_are_guarded(console: Console) -> None:
    page = await console.page()
    await page.goto(f"{console.url}/requests")
    await page.wait_for_url(re.compile(r".*/login\?next=/requests$"))
    await console.check(page, "login")
    await page.get_by_label("Account").fill("ops@leadtrail.test")
    await page.get_by_label("Password").fill("wrong")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_have_text("Unknown account or wrong password.")

    page = await console.login("ops@leadtrail.test")
    cookies = {cookie["name"]: cookie for cookie in await page.context.cookies()}
    session = cookies["leadtrail_console"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"

    no_token = await page.context.request.post(
        f"{console.url}/holds", form={"tenant": "acme", "reason": "x"}, max_redirects=0
    )
    assert no_token.status == 403
    async with httpx.AsyncClient(base_url=console.url) as anonymous:
        assert (await anonymous.post("/holds", data={"tenant": "acme"})).status_code == 401
        page_headers = (await anonymous.get("/login")).headers
        assert "default-src 'none'" in page_headers["content-security-policy"]
        assert page_headers["x-frame-options"] == "DENY"

    await page.get_by_role("link", name="System").click()
    await page.get_by_role("button", name="Verify the log now").click()
    await expect(page.get_by_role("status").first).to_contain_text("verification started")
    await reload_until(
        page,
        lambda: page.get_by_text(re.compile(r"^Intact: \d+ producer chains")).is_visible(),
        "the verification to finish",
    )
    await console.check(page, "system")
    started = await console.stack.wait_for_event(
        "operator-events", lambda e: e.type == "operator.log_verification_started"
    )
    assert started.data == {"started_by": "console:ops@leadtrail.test", "scope": "all"}
    assert started.tenant_id == "_all"

    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url(re.compile(r".*/login$"))
    response = await page.goto(f"{console.url}/system")
    assert response is not None
    assert "/login" in page.url
