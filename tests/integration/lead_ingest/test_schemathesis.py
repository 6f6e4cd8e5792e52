"""Property-based API testing: schemathesis drives the live lead-ingest process from the
checked-in OpenAPI document with all its checks; no request may produce a 5xx or a response
that violates it, and a request the document calls valid is never refused as invalid.

Schemathesis' own ``positive_data_acceptance`` treats every 422 to a schema-valid request as a
disagreement. A few rules cannot be stated in JSON Schema (does this e-mail parse, is this the
token we handed out, is the time later than now); the document lists their problem types
(:data:`services.lead_ingest.api.RULES_BEYOND_THE_SCHEMA`) and
:func:`schema_valid_requests_are_not_refused_as_invalid` accepts a 422 with exactly those, and
nothing else: a ``validation-error`` for a schema-valid request fails the test (issue 16 item 12).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.generation.case import Case

from contracts import ALL_TOPICS
from devstack.process import free_port, log_tail
from services.common.tenants import TenantDirectory
from services.common.topics import ensure_topics
from services.lead_ingest.api import RULES_BEYOND_THE_SCHEMA
from tests.integration.lead_ingest.conftest import RULES, ingest_settings
from tools.openapi import OPENAPI_DIR

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class LiveIngest:
    url: str
    api_key: str


@pytest.fixture(scope="module")
def live_ingest(
    kafka_bootstrap: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveIngest]:
    root = tmp_path_factory.mktemp("schemathesis")
    settings_ = ingest_settings(kafka_bootstrap, mongo_url, root / "config")
    _, api_key = TenantDirectory(settings_.config_dir).add(
        "Acme", tenant_id="acme", default_region="IT"
    )
    (root / "config" / "tenants" / "acme").mkdir(parents=True)
    (root / "config" / "tenants" / "acme" / "scoring.yaml").write_text(RULES)
    with ThreadPoolExecutor(1) as pool:  # the suite's event loop is not running here
        pool.submit(
            asyncio.run,
            ensure_topics(settings_.kafka_bootstrap, settings_.topic_prefix, ALL_TOPICS),
        ).result()
    port = free_port()
    env = {
        "LEADTRAIL_KAFKA_BOOTSTRAP": settings_.kafka_bootstrap,
        "LEADTRAIL_MONGO_URL": settings_.mongo_url,
        "LEADTRAIL_MONGO_DB": settings_.mongo_db,
        "LEADTRAIL_TOPIC_PREFIX": settings_.topic_prefix,
        "LEADTRAIL_KEK": settings_.kek.get_secret_value(),
        "LEADTRAIL_BLIND_INDEX_KEY": settings_.blind_index_key.get_secret_value(),
        "LEADTRAIL_CONFIG_DIR": str(settings_.config_dir),
        "LEADTRAIL_HTTP_PORT": str(port),
        "LEADTRAIL_RATE_LIMIT_PER_S": "10000",
        "LEADTRAIL_RATE_LIMIT_BURST": "10000",
        "LEADTRAIL_LOG_LEVEL": "warning",
        "PATH": "/usr/bin:/bin",
    }
    log = root / "lead-ingest.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.lead_ingest"], env=env, stdout=output, stderr=output
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"lead-ingest exited:\n{log_tail(log)}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"lead-ingest not ready:\n{log_tail(log)}")
            time.sleep(0.2)
        yield LiveIngest(url, api_key)
    finally:
        process.terminate()
        process.wait(timeout=30)


schema = schemathesis.openapi.from_path(OPENAPI_DIR / "lead-ingest.openapi.json")

ACCEPTED = frozenset({401, 403, 404, 409, 410, 429})
"""Besides 2xx, what a schema-valid request may get: unknown ids, a signature that is not
ours, an expired or erased package, conflicts, and rate limits."""


@schemathesis.check
def schema_valid_requests_are_not_refused_as_invalid(
    ctx: checks.CheckContext, response: schemathesis.Response, case: Case[Any]
) -> bool | None:
    """positive_data_acceptance, less the rules the document names but cannot state."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    status = response.status_code
    if 200 <= status < 300 or status in ACCEPTED:
        return None
    problem = response.json() if status == 422 else {}
    slug = str(problem.get("type", "")).removeprefix("urn:leadtrail:problem:")
    if status == 422 and slug in RULES_BEYOND_THE_SCHEMA:
        return None
    raise AssertionError(
        f"a request the document calls valid was refused: {status} {response.text[:500]}"
    )


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_lead_ingest_honours_its_openapi_document(case: Case[Any], live_ingest: LiveIngest) -> None:
    case.call_and_validate(
        base_url=live_ingest.url,
        headers={"Authorization": f"Bearer {live_ingest.api_key}"},
        excluded_checks=[checks.positive_data_acceptance],
        additional_checks=[schema_valid_requests_are_not_refused_as_invalid],
        timeout=30,
    )


def test_the_document_names_the_rules_it_cannot_state() -> None:
    document = httpx.Response(
        200, content=Path(OPENAPI_DIR / "lead-ingest.openapi.json").read_text()
    ).json()
    described = document["paths"]["/v1/leads"]["post"]["responses"]["422"]["description"]
    for slug in RULES_BEYOND_THE_SCHEMA:
        assert slug in described


def test_the_document_is_the_one_the_service_serves(live_ingest: LiveIngest) -> None:
    served = httpx.get(f"{live_ingest.url}/openapi.json", timeout=5).json()
    checked_in = Path(OPENAPI_DIR / "lead-ingest.openapi.json").read_text()
    assert served == httpx.Response(200, content=checked_in).json()
