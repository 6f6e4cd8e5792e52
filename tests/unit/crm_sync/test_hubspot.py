"""HubSpot: property mapping, upsert by email without duplicates, archive vs GDPR delete."""

from __future__ import annotations

import httpx
import pytest

from services.crm_sync.adapters.base import ConnectionConfig, CrmError
from services.crm_sync.adapters.hubspot import HubSpotAdapter, hubspot_properties
from tests.crm_fakes import HubSpotFake
from tests.crm_fakes.samples import sample_contact

CONTACTS = "/crm/v3/objects/contacts"


def test_properties_use_hubspots_names_and_the_tenant_mapping() -> None:
    contact = sample_contact(
        phone=None, extra={"leadtrail_score": "82", "leadtrail_summary": "budget=15000"}
    )
    assert hubspot_properties(contact, clear=False) == {
        "email": "jane.doe@example.com",
        "firstname": "Jane",
        "lastname": "Doe",
        "company": "Example GmbH",
        "jobtitle": "Head of Purchasing",
        "leadtrail_score": "82",
        "leadtrail_summary": "budget=15000",
    }
    assert hubspot_properties(contact, clear=True)["phone"] == ""


async def test_first_upsert_with_email_uses_batch_upsert_and_never_duplicates(
    hubspot: HubSpotFake, hubspot_adapter: HubSpotAdapter
) -> None:
    first = await hubspot_adapter.upsert(sample_contact(), None)
    # crm-sync lost the id (crashed before storing it) and sends the lead again
    again = await hubspot_adapter.upsert(sample_contact(email="Jane.Doe@Example.com"), None)
    assert again == first
    assert list(hubspot.records) == [first]
    upserts = [r for r in hubspot.requests if r.path == f"{CONTACTS}/batch/upsert"]
    assert len(upserts) == 2
    expected = hubspot_properties(sample_contact(), clear=False)
    del expected["email"]  # the email is the input's id
    assert upserts[0].json() == {
        "inputs": [{"idProperty": "email", "id": "jane.doe@example.com", "properties": expected}]
    }


async def test_upsert_by_email_adopts_a_contact_made_elsewhere_without_clearing_it(
    hubspot: HubSpotFake, hubspot_adapter: HubSpotAdapter
) -> None:
    async with httpx.AsyncClient() as client:
        made = await client.post(
            hubspot.base_url + CONTACTS,
            headers={"Authorization": f"Bearer {hubspot.token}"},
            json={"properties": {"email": "jane.doe@example.com", "website": "example.com"}},
        )
    assert made.status_code == 201
    record_id = await hubspot_adapter.upsert(sample_contact(phone=None), None)
    assert record_id == made.json()["id"]
    assert hubspot.records[record_id]["website"] == "example.com"
    assert hubspot.records[record_id]["firstname"] == "Jane"


async def test_the_fake_refuses_a_second_contact_with_the_same_email(
    hubspot: HubSpotFake, hubspot_adapter: HubSpotAdapter
) -> None:
    record_id = await hubspot_adapter.upsert(sample_contact(), None)
    async with httpx.AsyncClient() as client:
        again = await client.post(
            hubspot.base_url + CONTACTS,
            headers={"Authorization": f"Bearer {hubspot.token}"},
            json={"properties": {"email": "JANE.DOE@example.com"}},
        )
    assert again.status_code == 409
    assert again.json()["message"] == f"Contact already exists. Existing ID: {record_id}"
    assert again.json()["category"] == "CONFLICT"


async def test_without_email_a_contact_is_created(
    hubspot: HubSpotFake, hubspot_adapter: HubSpotAdapter
) -> None:
    record_id = await hubspot_adapter.upsert(sample_contact(email=None), None)
    assert hubspot.requests[-1].method == "POST"
    assert hubspot.requests[-1].path == CONTACTS
    assert hubspot.records[record_id]["phone"] == "+4915112345678"


async def test_an_update_patches_the_record_and_clears_what_is_gone(
    hubspot: HubSpotFake, hubspot_adapter: HubSpotAdapter
) -> None:
    record_id = await hubspot_adapter.upsert(sample_contact(), None)
    assert "phone" in hubspot.records[record_id]
    same = await hubspot_adapter.upsert(sample_contact(phone=None, job_title="CEO"), record_id)
    assert same == record_id
    assert hubspot.requests[-1].method == "PATCH"
    assert "phone" not in hubspot.records[record_id]
    assert hubspot.records[record_id]["jobtitle"] == "CEO"


async def test_rectifying_to_an_email_another_contact_has_is_a_permanent_409(
    hubspot: HubSpotFake, hubspot_adapter: HubSpotAdapter
) -> None:
    mine = await hubspot_adapter.upsert(sample_contact(), None)
    await hubspot_adapter.upsert(sample_contact(lead_id="other", email="other@example.com"), None)
    with pytest.raises(CrmError) as caught:
        await hubspot_adapter.upsert(sample_contact(email="other@example.com"), mine)
    assert (caught.value.status, caught.value.transient) == (409, False)
    assert "Contact already exists" in str(caught.value)


async def test_updating_a_record_deleted_in_hubspot_is_a_permanent_404(
    hubspot_adapter: HubSpotAdapter,
) -> None:
    with pytest.raises(CrmError) as caught:
        await hubspot_adapter.upsert(sample_contact(), "424242")
    assert (caught.value.status, caught.value.transient) == (404, False)


async def test_delete_archives_by_default(
    hubspot: HubSpotFake, hubspot_adapter: HubSpotAdapter
) -> None:
    record_id = await hubspot_adapter.upsert(sample_contact(), None)
    await hubspot_adapter.delete(None, record_id)
    assert hubspot.requests[-1].method == "DELETE"
    assert record_id in hubspot.archived
    assert hubspot.gdpr_deleted == []


async def test_gdpr_delete_removes_the_contact_for_good(
    hubspot: HubSpotFake, hubspot_config: ConnectionConfig
) -> None:
    adapter = HubSpotAdapter(hubspot_config.model_copy(update={"gdpr_delete": True}))
    try:
        record_id = await adapter.upsert(sample_contact(), None)
        await adapter.delete(sample_contact(), record_id)
        request = hubspot.requests[-1]
        assert (request.method, request.path) == ("POST", f"{CONTACTS}/gdpr-delete")
        assert request.json() == {"objectId": record_id}
        assert hubspot.gdpr_deleted == [record_id]
        assert record_id not in hubspot.records
        assert record_id not in hubspot.archived
        await adapter.delete(None, record_id)  # 404 now: already gone is fine
        assert hubspot.requests[-1].status == 404
    finally:
        await adapter.aclose()


async def test_429_without_retry_after_waits_one_rate_limit_interval(
    hubspot: HubSpotFake, hubspot_adapter: HubSpotAdapter
) -> None:
    hubspot.fail_next(1, 429)
    with pytest.raises(CrmError) as caught:
        await hubspot_adapter.upsert(sample_contact(), None)
    assert caught.value.transient
    assert caught.value.retry_after == 10.0  # X-HubSpot-RateLimit-Interval-Milliseconds
    assert "RATE_LIMIT" in str(caught.value)


async def test_daily_limit_429_has_no_guess(
    hubspot: HubSpotFake, hubspot_adapter: HubSpotAdapter
) -> None:
    hubspot.fail_next(1, 429, code="DAILY")
    with pytest.raises(CrmError) as caught:
        await hubspot_adapter.upsert(sample_contact(), None)
    assert (caught.value.transient, caught.value.retry_after) == (True, None)


async def test_the_token_goes_as_a_bearer_header(
    hubspot: HubSpotFake, hubspot_adapter: HubSpotAdapter
) -> None:
    await hubspot_adapter.upsert(sample_contact(), None)
    request = hubspot.requests[-1]
    assert request.headers["authorization"] == f"Bearer {hubspot.token}"
    assert request.query == {}
    assert request.headers["user-agent"].startswith("leadtrail-crm-sync/")
