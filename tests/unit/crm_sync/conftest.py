"""The fakes run once per test module and are reset before each test; adapters per test.

Secrets reach the adapters the way they do in production: through an environment variable
named in the connection config (set here with monkeypatch).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.crm_sync.adapters.base import ConnectionConfig
from services.crm_sync.adapters.hubspot import HubSpotAdapter
from services.crm_sync.adapters.pipedrive import PipedriveAdapter
from services.crm_sync.adapters.salesforce import SalesforceAdapter
from services.crm_sync.adapters.webhook import WebhookAdapter
from tests.crm_fakes import HubSpotFake, PipedriveFake, SalesforceFake, WebhookReceiverFake

HUBSPOT_CUSTOM = ("leadtrail_score", "leadtrail_summary")
SALESFORCE_EXTERNAL_ID = "Leadtrail_Lead_Id__c"
SALESFORCE_CUSTOM = ("Leadtrail_Score__c",)
PIPEDRIVE_SCORE_KEY = "9f3c2a1b7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"


# -- servers (module scope) -------------------------------------------------------------
@pytest.fixture(scope="module")
async def hubspot_server() -> AsyncIterator[HubSpotFake]:
    async with HubSpotFake.running(custom_properties=HUBSPOT_CUSTOM) as fake:
        yield fake


@pytest.fixture(scope="module")
async def salesforce_server() -> AsyncIterator[SalesforceFake]:
    async with SalesforceFake.running(
        custom_fields=SALESFORCE_CUSTOM, external_id_fields=[SALESFORCE_EXTERNAL_ID]
    ) as fake:
        yield fake


@pytest.fixture(scope="module")
async def pipedrive_server() -> AsyncIterator[PipedriveFake]:
    async with PipedriveFake.running(custom_fields=[PIPEDRIVE_SCORE_KEY]) as fake:
        yield fake


@pytest.fixture(scope="module")
async def webhook_server() -> AsyncIterator[WebhookReceiverFake]:
    async with WebhookReceiverFake.running() as fake:
        yield fake


# -- the same servers, clean for each test ------------------------------------------------
@pytest.fixture
async def hubspot(hubspot_server: HubSpotFake) -> HubSpotFake:
    await hubspot_server.reset()
    return hubspot_server


@pytest.fixture
async def salesforce(salesforce_server: SalesforceFake) -> SalesforceFake:
    await salesforce_server.reset()
    return salesforce_server


@pytest.fixture
async def pipedrive(pipedrive_server: PipedriveFake) -> PipedriveFake:
    await pipedrive_server.reset()
    return pipedrive_server


@pytest.fixture
async def webhook(webhook_server: WebhookReceiverFake) -> WebhookReceiverFake:
    await webhook_server.reset()
    return webhook_server


# -- configs and adapters -----------------------------------------------------------------
@pytest.fixture
def hubspot_config(hubspot: HubSpotFake, monkeypatch: pytest.MonkeyPatch) -> ConnectionConfig:
    monkeypatch.setenv("LT_TEST_HUBSPOT_TOKEN", hubspot.token)
    return ConnectionConfig(
        id="acme-hubspot",
        kind="hubspot",
        base_url=hubspot.base_url,
        secret_env="LT_TEST_HUBSPOT_TOKEN",
    )


@pytest.fixture
def salesforce_config(
    salesforce: SalesforceFake, monkeypatch: pytest.MonkeyPatch
) -> ConnectionConfig:
    monkeypatch.setenv("LT_TEST_SALESFORCE_TOKEN", salesforce.token)
    return ConnectionConfig(
        id="acme-salesforce",
        kind="salesforce",
        instance_url=salesforce.base_url,
        secret_env="LT_TEST_SALESFORCE_TOKEN",
    )


@pytest.fixture
def pipedrive_config(pipedrive: PipedriveFake, monkeypatch: pytest.MonkeyPatch) -> ConnectionConfig:
    monkeypatch.setenv("LT_TEST_PIPEDRIVE_TOKEN", pipedrive.token)
    return ConnectionConfig(
        id="acme-pipedrive",
        kind="pipedrive",
        base_url=pipedrive.base_url,
        secret_env="LT_TEST_PIPEDRIVE_TOKEN",
    )


@pytest.fixture
def webhook_config(
    webhook: WebhookReceiverFake, monkeypatch: pytest.MonkeyPatch
) -> ConnectionConfig:
    monkeypatch.setenv("LT_TEST_WEBHOOK_SECRET", webhook.secret)
    return ConnectionConfig(
        id="acme-webhook", kind="webhook", url=webhook.url, secret_env="LT_TEST_WEBHOOK_SECRET"
    )


@pytest.fixture
async def hubspot_adapter(hubspot_config: ConnectionConfig) -> AsyncIterator[HubSpotAdapter]:
    adapter = HubSpotAdapter(hubspot_config)
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def salesforce_adapter(
    salesforce_config: ConnectionConfig,
) -> AsyncIterator[SalesforceAdapter]:
    adapter = SalesforceAdapter(salesforce_config)
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def pipedrive_adapter(pipedrive_config: ConnectionConfig) -> AsyncIterator[PipedriveAdapter]:
    adapter = PipedriveAdapter(pipedrive_config)
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def webhook_adapter(webhook_config: ConnectionConfig) -> AsyncIterator[WebhookAdapter]:
    adapter = WebhookAdapter(webhook_config)
    yield adapter
    await adapter.aclose()
