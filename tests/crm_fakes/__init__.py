"""Local fakes of the CRMs crm-sync writes to: real HTTP on 127.0.0.1, in-memory stores.

Each fake implements the vendor endpoints the adapters use, checks credentials and payloads the
way the vendor documents, records every request, and can be made to fail::

    async with HubSpotFake.running() as fake:
        config = ConnectionConfig(id="hs", kind="hubspot", base_url=fake.base_url,
                                  secret_env="HUBSPOT_TOKEN")       # env var holds fake.token
        ...
        fake.records            # the vendor's data, by record id
        fake.requests           # RecordedRequest(method, path, query, headers, body, status)
        fake.fail_next(3, status=429, retry_after=2)   # the next 3 requests fail
        await fake.down()       # connection refused (down("503"): every answer is 503)
        await fake.up()
        await fake.reset()      # empty store and request log, no pending failures, up

``running(**options)`` takes each fake's constructor options (token, custom fields...).
"""

from tests.crm_fakes._server import Failure, FakeServer, RecordedRequest
from tests.crm_fakes.hubspot import HubSpotFake
from tests.crm_fakes.pipedrive import PipedriveFake
from tests.crm_fakes.salesforce import SalesforceFake
from tests.crm_fakes.webhook import WebhookReceiverFake

__all__ = [
    "Failure",
    "FakeServer",
    "HubSpotFake",
    "PipedriveFake",
    "RecordedRequest",
    "SalesforceFake",
    "WebhookReceiverFake",
]
