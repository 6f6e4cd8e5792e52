"""Pipedrive: persons found before created, leads, the three ways to send the token, pacing."""

from __future__ import annotations

import time

import pytest

from services.crm_sync.adapters.base import ConnectionConfig, CrmError
from services.crm_sync.adapters.pipedrive import ORIGIN_PREFIX, PipedriveAdapter, pipedrive_person
from tests.crm_fakes import PipedriveFake
from tests.crm_fakes.samples import sample_contact
from tests.unit.crm_sync.conftest import PIPEDRIVE_SCORE_KEY


def test_person_body() -> None:
    contact = sample_contact(phone=None, extra={PIPEDRIVE_SCORE_KEY: "82"})
    assert pipedrive_person(contact, clear=False) == {
        "name": "Jane Doe",
        "email": [{"value": "jane.doe@example.com", "primary": True}],
        PIPEDRIVE_SCORE_KEY: "82",
    }
    assert pipedrive_person(contact, clear=True)["phone"] == []
    nameless = sample_contact(first_name=None, last_name=None)
    assert pipedrive_person(nameless, clear=False)["name"] == "jane.doe@example.com"


async def test_create_then_update_the_same_person(
    pipedrive: PipedriveFake, pipedrive_adapter: PipedriveAdapter
) -> None:
    record_id = await pipedrive_adapter.upsert(sample_contact(), None)
    person = pipedrive.persons[int(record_id)]
    assert person["name"] == "Jane Doe"
    assert [e["value"] for e in person["phone"]] == ["+4915112345678"]
    same = await pipedrive_adapter.upsert(sample_contact(phone=None, last_name="Roe"), record_id)
    assert same == record_id
    assert pipedrive.requests[-1].method == "PUT"
    assert pipedrive.persons[int(record_id)]["phone"] == []
    assert pipedrive.persons[int(record_id)]["name"] == "Jane Roe"


async def test_a_repeated_first_upsert_finds_the_person_by_email(
    pipedrive: PipedriveFake, pipedrive_adapter: PipedriveAdapter
) -> None:
    first = await pipedrive_adapter.upsert(sample_contact(), None)
    again = await pipedrive_adapter.upsert(sample_contact(), None)
    assert again == first
    assert len(pipedrive.persons) == 1
    search = next(r for r in pipedrive.requests if r.path == "/v1/persons/search")
    assert search.query["term"] == "jane.doe@example.com"
    assert (search.query["fields"], search.query["exact_match"]) == ("email", "true")


async def test_without_email_the_person_is_found_by_phone(
    pipedrive: PipedriveFake, pipedrive_adapter: PipedriveAdapter
) -> None:
    first = await pipedrive_adapter.upsert(sample_contact(email=None), None)
    assert await pipedrive_adapter.upsert(sample_contact(email=None), None) == first
    assert len(pipedrive.persons) == 1


async def test_create_lead_links_one_lead_and_erasure_removes_it(
    pipedrive: PipedriveFake, pipedrive_config: ConnectionConfig
) -> None:
    adapter = PipedriveAdapter(pipedrive_config.model_copy(update={"create_lead": True}))
    try:
        record_id = await adapter.upsert(sample_contact(), None)
        await adapter.upsert(sample_contact(), None)  # a retry: no second lead
        await adapter.upsert(sample_contact(score=90), record_id)  # an update: no new lead
        [lead] = pipedrive.leads.values()
        assert lead["person_id"] == int(record_id)
        assert lead["title"] == "Jane Doe - Example GmbH"
        assert lead["origin_id"] == ORIGIN_PREFIX + sample_contact().lead_id
        # a lead a salesperson added by hand is not crm-sync's to delete
        pipedrive.leads["manual"] = {**lead, "id": "manual", "origin_id": None}

        await adapter.delete(None, record_id)
    finally:
        await adapter.aclose()
    assert list(pipedrive.leads) == ["manual"]
    assert pipedrive.persons == {}
    assert int(record_id) in pipedrive.deleted_persons


async def test_the_fake_wants_a_person_or_organization_for_a_lead(
    pipedrive: PipedriveFake, pipedrive_adapter: PipedriveAdapter
) -> None:
    import httpx

    async with httpx.AsyncClient() as client:
        response = await client.post(
            pipedrive.base_url + "/v1/leads",
            params={"api_token": pipedrive.token},
            json={"title": "orphan"},
        )
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert "person or an organization" in response.json()["error"]


@pytest.mark.parametrize(
    ("mode", "where"),
    [("api_token", "query"), ("x-api-token", "x-api-token"), ("bearer", "authorization")],
)
async def test_token_placement(
    pipedrive: PipedriveFake, pipedrive_config: ConnectionConfig, mode: str, where: str
) -> None:
    adapter = PipedriveAdapter(pipedrive_config.model_copy(update={"pipedrive_auth": mode}))
    try:
        await adapter.upsert(sample_contact(), None)
    finally:
        await adapter.aclose()
    request = pipedrive.requests[-1]
    assert request.status == 201
    if where == "query":
        assert request.query["api_token"] == pipedrive.token
        assert "authorization" not in request.headers
    elif where == "authorization":
        assert request.headers["authorization"] == f"Bearer {pipedrive.token}"
        assert "api_token" not in request.query
    else:
        assert request.headers["x-api-token"] == pipedrive.token
        assert "api_token" not in request.query


async def test_the_adapter_waits_for_the_rate_limit_window_instead_of_hitting_429(
    pipedrive: PipedriveFake, pipedrive_adapter: PipedriveAdapter
) -> None:
    pipedrive.rate_limit(2, 0.6)
    started = time.monotonic()
    await pipedrive_adapter.upsert(sample_contact(phone=None), None)  # search + create
    await pipedrive_adapter.upsert(sample_contact(phone=None), None)  # waits, then search + put
    elapsed = time.monotonic() - started
    assert [r.status for r in pipedrive.requests] == [200, 201, 200, 200]
    assert elapsed >= 0.4
    assert pipedrive.requests[1].status == 201


async def test_a_long_rate_limit_wait_fails_fast_as_transient(
    pipedrive: PipedriveFake, pipedrive_config: ConnectionConfig
) -> None:
    pipedrive.rate_limit(1, 30)
    adapter = PipedriveAdapter(pipedrive_config.model_copy(update={"timeout_s": 2}))
    try:
        with pytest.raises(CrmError) as caught:
            await adapter.upsert(sample_contact(phone=None), None)  # search ok, then wait 30 s
    finally:
        await adapter.aclose()
    assert caught.value.transient
    assert caught.value.retry_after is not None
    assert 25 <= caught.value.retry_after <= 30
    assert len(pipedrive.requests) == 1


async def test_the_fakes_own_429_carries_retry_after(
    pipedrive: PipedriveFake, pipedrive_config: ConnectionConfig
) -> None:
    pipedrive.rate_limit(1, 30)
    first = PipedriveAdapter(pipedrive_config)
    second = PipedriveAdapter(pipedrive_config)  # knows nothing of the first one's window
    try:
        await first.upsert(sample_contact(email=None, phone=None), None)
        with pytest.raises(CrmError) as caught:
            await second.upsert(sample_contact(email=None, phone=None), None)
    finally:
        await first.aclose()
        await second.aclose()
    assert (caught.value.status, caught.value.transient) == (429, True)
    assert caught.value.retry_after is not None
    assert caught.value.retry_after >= 25
    assert "Request over limit" in str(caught.value)


async def test_updating_a_deleted_person_is_a_permanent_404(
    pipedrive_adapter: PipedriveAdapter,
) -> None:
    record_id = await pipedrive_adapter.upsert(sample_contact(), None)
    await pipedrive_adapter.delete(None, record_id)
    with pytest.raises(CrmError) as caught:
        await pipedrive_adapter.upsert(sample_contact(), record_id)
    assert (caught.value.status, caught.value.transient) == (404, False)
    assert "Person not found" in str(caught.value)
