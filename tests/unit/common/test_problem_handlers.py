"""Failures a client can act on are problem documents, never a bare 500."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from pymongo.errors import ExecutionTimeout

from services.common.http import PROBLEM_JSON, install_problem_handlers


async def test_a_failing_document_store_is_a_503_to_retry() -> None:
    app = FastAPI()
    install_problem_handlers(app, retry_after_s=7)

    @app.post("/v1/leads")
    async def capture() -> None:
        raise ExecutionTimeout("operation exceeded time limit", 50)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        response = await client.post("/v1/leads")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == "7"
    assert response.json()["type"] == "urn:leadtrail:problem:store-unavailable"
