"""Salesforce: Lead fields and placeholders, external-id upserts, error codes, limit header."""

from __future__ import annotations

import httpx
import pytest
import structlog

from services.crm_sync.adapters.base import ConnectionConfig, CrmError
from services.crm_sync.adapters.salesforce import (
    PLACEHOLDER,
    SalesforceAdapter,
    parse_limit_info,
    salesforce_fields,
)
from tests.crm_fakes import SalesforceFake
from tests.crm_fakes.samples import sample_contact
from tests.unit.crm_sync.conftest import SALESFORCE_EXTERNAL_ID

LEADS = "/services/data/v60.0/sobjects/Lead"


def test_fields_use_salesforce_names_placeholders_and_lengths() -> None:
    contact = sample_contact(
        last_name=None, company=None, first_name="J" * 50, extra={"LeadSource": "Web"}
    )
    assert salesforce_fields(contact, clear=False) == {
        "FirstName": "J" * 40,
        "LastName": PLACEHOLDER,
        "Email": "jane.doe@example.com",
        "Phone": "+4915112345678",
        "Company": PLACEHOLDER,
        "Title": "Head of Purchasing",
        "LeadSource": "Web",
    }
    cleared = salesforce_fields(sample_contact(phone=None, email=None), clear=True)
    assert cleared["Phone"] is None
    assert cleared["Email"] is None


def test_limit_info_header() -> None:
    assert parse_limit_info("api-usage=18/5000") == (18, 5000)
    header = "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)"
    assert parse_limit_info(header) == (25, 5000)
    assert parse_limit_info("api-usage=10018/100000; api-bursts=1/750") == (10018, 100000)
    assert parse_limit_info(None) is None
    assert parse_limit_info("per-app-api-usage=17/250") is None


async def test_the_fake_rejects_a_lead_without_lastname_or_company(
    salesforce: SalesforceFake,
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            salesforce.base_url + LEADS + "/",
            headers={"Authorization": f"Bearer {salesforce.token}"},
            json={"FirstName": "Jane", "Email": "jane@example.com"},
        )
    assert response.status_code == 400
    assert response.json() == [
        {
            "message": "Required fields are missing: [LastName, Company]",
            "errorCode": "REQUIRED_FIELD_MISSING",
            "fields": ["LastName", "Company"],
        }
    ]


async def test_create_fills_required_fields_with_the_web_to_lead_placeholder(
    salesforce: SalesforceFake, salesforce_adapter: SalesforceAdapter
) -> None:
    record_id = await salesforce_adapter.upsert(sample_contact(last_name=None, company=None), None)
    assert record_id.startswith("00Q")
    assert len(record_id) == 18
    assert salesforce.records[record_id]["LastName"] == PLACEHOLDER
    assert salesforce.records[record_id]["Company"] == PLACEHOLDER
    request = salesforce.requests[-1]
    assert (request.method, request.path, request.status) == ("POST", LEADS + "/", 201)


async def test_update_is_a_204_patch_that_clears_missing_fields(
    salesforce: SalesforceFake, salesforce_adapter: SalesforceAdapter
) -> None:
    record_id = await salesforce_adapter.upsert(sample_contact(), None)
    same = await salesforce_adapter.upsert(sample_contact(phone=None, company=None), record_id)
    assert same == record_id
    request = salesforce.requests[-1]
    assert (request.method, request.path, request.status) == ("PATCH", f"{LEADS}/{record_id}", 204)
    assert "Phone" not in salesforce.records[record_id]
    assert salesforce.records[record_id]["Company"] == PLACEHOLDER


async def test_delete_moves_the_lead_to_the_recycle_bin_and_twice_is_fine(
    salesforce: SalesforceFake, salesforce_adapter: SalesforceAdapter
) -> None:
    record_id = await salesforce_adapter.upsert(sample_contact(), None)
    await salesforce_adapter.delete(None, record_id)
    assert salesforce.requests[-1].status == 204
    assert record_id in salesforce.recycle_bin
    await salesforce_adapter.delete(None, record_id)
    assert salesforce.requests[-1].status == 404


async def test_updating_a_deleted_lead_is_a_permanent_404(
    salesforce: SalesforceFake, salesforce_adapter: SalesforceAdapter
) -> None:
    record_id = await salesforce_adapter.upsert(sample_contact(), None)
    await salesforce_adapter.delete(None, record_id)
    with pytest.raises(CrmError) as caught:
        await salesforce_adapter.upsert(sample_contact(), record_id)
    assert (caught.value.status, caught.value.transient) == (404, False)
    assert "ENTITY_IS_DELETED" in str(caught.value)


async def test_external_id_upsert_never_makes_a_second_lead(
    salesforce: SalesforceFake, salesforce_config: ConnectionConfig
) -> None:
    config = salesforce_config.model_copy(update={"external_id_field": SALESFORCE_EXTERNAL_ID})
    adapter = SalesforceAdapter(config)
    try:
        first = await adapter.upsert(sample_contact(), None)
        again = await adapter.upsert(sample_contact(job_title="CEO"), None)
    finally:
        await adapter.aclose()
    assert again == first
    assert list(salesforce.records) == [first]
    assert salesforce.records[first][SALESFORCE_EXTERNAL_ID] == sample_contact().lead_id
    assert salesforce.records[first]["Title"] == "CEO"
    path = f"{LEADS}/{SALESFORCE_EXTERNAL_ID}/{sample_contact().lead_id}"
    assert [(r.method, r.path, r.status) for r in salesforce.requests] == [
        ("PATCH", path, 201),
        ("PATCH", path, 200),
    ]


async def test_api_version_comes_from_the_config(
    salesforce: SalesforceFake, salesforce_config: ConnectionConfig
) -> None:
    adapter = SalesforceAdapter(salesforce_config.model_copy(update={"api_version": "v59.0"}))
    try:
        await adapter.upsert(sample_contact(), None)
    finally:
        await adapter.aclose()
    assert salesforce.requests[-1].path == "/services/data/v59.0/sobjects/Lead/"


@pytest.mark.parametrize(
    ("status", "code"), [(403, "REQUEST_LIMIT_EXCEEDED"), (400, "UNABLE_TO_LOCK_ROW")]
)
async def test_documented_retryable_error_codes_are_transient(
    salesforce: SalesforceFake, salesforce_adapter: SalesforceAdapter, status: int, code: str
) -> None:
    salesforce.fail_next(1, status, code=code, message="TotalRequests Limit exceeded.")
    with pytest.raises(CrmError) as caught:
        await salesforce_adapter.upsert(sample_contact(), None)
    assert (caught.value.status, caught.value.transient) == (status, True)
    assert code in str(caught.value)


async def test_other_403s_are_permanent(
    salesforce: SalesforceFake, salesforce_adapter: SalesforceAdapter
) -> None:
    salesforce.fail_next(1, 403, code="INSUFFICIENT_ACCESS_OR_READONLY", message="no access")
    with pytest.raises(CrmError) as caught:
        await salesforce_adapter.upsert(sample_contact(), None)
    assert (caught.value.status, caught.value.transient) == (403, False)


async def test_an_expired_token_answers_invalid_session_id(
    salesforce_adapter: SalesforceAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LT_TEST_SALESFORCE_TOKEN", "expired")
    with pytest.raises(CrmError) as caught:
        await salesforce_adapter.upsert(sample_contact(), None)
    assert (caught.value.status, caught.value.transient) == (401, False)
    assert "INVALID_SESSION_ID: Session expired or invalid" in str(caught.value)


async def test_limit_info_is_kept_and_high_usage_is_logged_once(
    salesforce: SalesforceFake, salesforce_adapter: SalesforceAdapter
) -> None:
    salesforce.api_limit = 4
    with structlog.testing.capture_logs() as logs:
        for _ in range(4):
            await salesforce_adapter.upsert(sample_contact(), None)
    assert salesforce_adapter.api_usage == (4, 4)
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert len(warnings) == 1
    assert warnings[0]["used"] == 4
