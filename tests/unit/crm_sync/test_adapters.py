"""Every adapter against its fake over loopback HTTP: the record lifecycle and each failure mode.

The vendor-specific behaviour (payload mapping, GDPR delete, rate limits, signatures) is in the
test_<vendor>.py modules beside this one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.utils import formatdate

import pytest

from services.crm_sync.adapters.base import (
    ConnectionConfig,
    CrmAdapter,
    CrmContact,
    CrmError,
    build_adapter,
)
from tests.crm_fakes import (
    FakeServer,
    HubSpotFake,
    PipedriveFake,
    SalesforceFake,
    WebhookReceiverFake,
)
from tests.crm_fakes.samples import sample_contact

VENDORS = ["hubspot", "salesforce", "pipedrive", "webhook"]


@dataclass
class Harness:
    """One vendor's fake and adapter, and how to read its store and provoke a 400."""

    name: str
    fake: FakeServer
    config: ConnectionConfig
    adapter: CrmAdapter
    secret: str
    live: Callable[[], int]
    email_of: Callable[[str], str | None]
    bad_request: Callable[[], CrmContact]
    bad_request_text: str


def _harness(name: str, request: pytest.FixtureRequest) -> Harness:
    config: ConnectionConfig = request.getfixturevalue(f"{name}_config")
    adapter: CrmAdapter = request.getfixturevalue(f"{name}_adapter")
    fake = request.getfixturevalue(name)
    if isinstance(fake, HubSpotFake):
        hs = fake
        return Harness(
            name, hs, config, adapter, hs.token,
            live=lambda: len(hs.records),
            email_of=lambda rid: hs.records[rid].get("email"),
            bad_request=lambda: sample_contact(extra={"no_such_property": "x"}),
            bad_request_text='Property \\"no_such_property\\" does not exist',
        )  # fmt: skip
    if isinstance(fake, SalesforceFake):
        sf = fake
        return Harness(
            name, sf, config, adapter, sf.token,
            live=lambda: len(sf.records),
            email_of=lambda rid: sf.records[rid].get("Email"),
            bad_request=lambda: sample_contact(extra={"No_Such_Field__c": "x"}),
            bad_request_text="INVALID_FIELD: No such column 'No_Such_Field__c' on sobject",
        )  # fmt: skip
    if isinstance(fake, PipedriveFake):
        pd = fake

        def pipedrive_email(record_id: str) -> str | None:
            emails = pd.persons[int(record_id)]["email"]
            return str(emails[0]["value"]) if emails else None

        def pipedrive_bad() -> CrmContact:
            pd.fail_next(1, 400, message="Invalid email address")
            return sample_contact()

        return Harness(
            name, pd, config, adapter, pd.token,
            live=lambda: len(pd.persons),
            email_of=pipedrive_email,
            bad_request=pipedrive_bad,
            bad_request_text="Invalid email address",
        )  # fmt: skip
    assert isinstance(fake, WebhookReceiverFake)
    wh = fake

    def webhook_bad() -> CrmContact:
        wh.fail_next(1, 400, message="lead.email is not allowed here")
        return sample_contact()

    return Harness(
        name, wh, config, adapter, wh.secret,
        live=lambda: len(wh.records),
        email_of=lambda rid: wh.records[rid].get("email"),
        bad_request=webhook_bad,
        bad_request_text="lead.email is not allowed here",
    )  # fmt: skip


@pytest.fixture(params=VENDORS)
def harness(request: pytest.FixtureRequest) -> Harness:
    return _harness(request.param, request)


async def _fails(adapter: CrmAdapter, contact: CrmContact | None = None) -> CrmError:
    with pytest.raises(CrmError) as caught:
        await adapter.upsert(contact or sample_contact(), None)
    return caught.value


@pytest.fixture
async def settled(harness: Harness) -> AsyncIterator[Harness]:
    """The harness, and after the test: wait until the fake answered everything it got."""
    yield harness
    async with asyncio.timeout(5):
        await harness.fake.idle()


# -- the lifecycle ----------------------------------------------------------------------
async def test_create_update_delete_keeps_one_record(harness: Harness) -> None:
    adapter = harness.adapter
    record_id = await adapter.upsert(sample_contact(), None)
    assert harness.live() == 1
    assert harness.email_of(record_id) == "jane.doe@example.com"

    rectified = sample_contact(email="jane.doe@rectified.example")
    assert await adapter.upsert(rectified, record_id) == record_id
    assert harness.live() == 1, "the update made a second record"
    assert harness.email_of(record_id) == "jane.doe@rectified.example"

    await adapter.delete(rectified, record_id)
    assert harness.live() == 0
    await adapter.delete(None, record_id)  # erasing twice is not an error
    assert all(req.status is not None and req.status < 500 for req in harness.fake.requests)


async def test_build_adapter_gives_each_kind(harness: Harness) -> None:
    adapter = build_adapter(harness.config)
    try:
        assert adapter.kind == harness.name
        assert isinstance(adapter, CrmAdapter)
        assert type(adapter) is type(harness.adapter)
    finally:
        await adapter.aclose()


async def test_an_injected_client_is_used_and_left_open(harness: Harness) -> None:
    import httpx

    async with httpx.AsyncClient() as client:
        adapter = build_adapter(harness.config, client)
        await adapter.upsert(sample_contact(), None)
        await adapter.aclose()
        assert not client.is_closed
    assert harness.live() == 1


# -- failures ---------------------------------------------------------------------------
async def test_429_is_transient_with_retry_after_seconds(harness: Harness) -> None:
    harness.fake.fail_next(1, 429, retry_after=7)
    error = await _fails(harness.adapter)
    assert (error.status, error.transient, error.retry_after) == (429, True, 7.0)
    assert harness.live() == 0


async def test_429_retry_after_as_http_date(harness: Harness) -> None:
    harness.fake.fail_next(1, 429, retry_after=formatdate(time.time() + 30, usegmt=True))
    error = await _fails(harness.adapter)
    assert error.transient
    assert error.retry_after is not None
    assert 25 <= error.retry_after <= 31


async def test_500_is_transient(harness: Harness) -> None:
    harness.fake.fail_next(1, 500)
    error = await _fails(harness.adapter)
    assert (error.status, error.transient) == (500, True)
    # and the next call goes through
    assert await harness.adapter.upsert(sample_contact(), None)


async def test_503_while_down_is_transient(harness: Harness) -> None:
    await harness.fake.down("503")
    error = await _fails(harness.adapter)
    assert (error.status, error.transient) == (503, True)


async def test_400_is_permanent_with_the_vendors_text(harness: Harness) -> None:
    error = await _fails(harness.adapter, harness.bad_request())
    assert (error.status, error.transient, error.retry_after) == (400, False, None)
    assert harness.bad_request_text in str(error)
    assert error.body


async def test_connection_refused_is_transient(harness: Harness) -> None:
    await harness.adapter.upsert(sample_contact(), None)  # a pooled connection exists
    await harness.fake.down()
    error = await _fails(harness.adapter)
    assert (error.status, error.transient) == (None, True)
    assert "connection failed" in str(error)
    await harness.fake.up()
    assert await harness.adapter.upsert(sample_contact(), None)


async def test_timeout_is_transient(settled: Harness) -> None:
    adapter = build_adapter(settled.config.model_copy(update={"timeout_s": 0.1}))
    settled.fake.delay_next(1, 0.35)
    try:
        error = await _fails(adapter)
    finally:
        await adapter.aclose()
    assert (error.status, error.transient) == (None, True)
    assert "timed out" in str(error)


async def test_wrong_secret_is_permanent_and_a_rotated_one_is_picked_up(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert harness.config.secret_env is not None
    monkeypatch.setenv(harness.config.secret_env, "wrong-" + harness.secret)
    error = await _fails(harness.adapter)
    assert (error.status, error.transient) == (401, False)
    monkeypatch.setenv(harness.config.secret_env, harness.secret)
    assert await harness.adapter.upsert(sample_contact(), None)


async def test_missing_secret_is_permanent(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = harness.config.model_copy(update={"secret_env": "LT_TEST_NOT_SET"})
    monkeypatch.delenv("LT_TEST_NOT_SET", raising=False)
    adapter = build_adapter(config)
    try:
        error = await _fails(adapter)
    finally:
        await adapter.aclose()
    assert (error.status, error.transient) == (None, False)
    assert "LT_TEST_NOT_SET" in str(error)
    assert harness.fake.requests == []


async def test_secrets_never_appear_in_errors_reprs_or_logs(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert harness.config.secret_env is not None
    errors = []
    harness.fake.fail_next(1, 500, message=f"upstream said {harness.secret}")
    errors.append(await _fails(harness.adapter))
    await harness.fake.down()
    errors.append(await _fails(harness.adapter))
    await harness.fake.up()
    wrong = "wrong-" + harness.secret
    monkeypatch.setenv(harness.config.secret_env, wrong)
    fresh = build_adapter(harness.config)  # the first adapter keeps the secret it read
    try:
        errors.append(await _fails(fresh))
    finally:
        await fresh.aclose()
    assert errors[-1].status == 401

    shown = [repr(harness.config), str(harness.config), harness.config.model_dump_json()]
    shown += [repr(harness.adapter), str(harness.adapter)]
    for error in errors:
        shown += [str(error), repr(error), error.body or "", str(error.__cause__ or "")]
    captured = capsys.readouterr()
    shown += [captured.out, captured.err]
    for text in shown:
        assert harness.secret not in text
        assert wrong not in text
