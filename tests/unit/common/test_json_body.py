"""Strict JSON bodies (issue 16 item 9): what Python's json module bends is a 422."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from services.common.http import BodySizeLimit, install_problem_handlers
from services.common.json_body import StrictJSON, StrictJSONError, strict_loads


@pytest.mark.parametrize(
    "text",
    [
        "NaN",
        '{"a": Infinity}',
        "[-Infinity]",
        '{"a": 1e400}',
        '{"a": -1e400}',
        "9223372036854775808",
        "-9223372036854775809",
        "1" * 4000,
        '{"a": 1, "b": {"c": 1, "c": 2}}',
    ],
)
def test_what_python_would_bend_is_refused(text: str) -> None:
    with pytest.raises(StrictJSONError):
        strict_loads(text)


def test_ordinary_json_reads_as_usual() -> None:
    text = '{"a": [1, -2.5, 1e-400, 9223372036854775807, -9223372036854775808], "b": {"a": 1}}'
    assert strict_loads(text) == json.loads(text)
    with pytest.raises(json.JSONDecodeError):
        strict_loads('{"a": ')


class Body(BaseModel):
    value: Any = None


def app() -> FastAPI:
    application = FastAPI()
    install_problem_handlers(application)
    application.add_middleware(StrictJSON)
    application.add_middleware(BodySizeLimit, max_bytes=1024)

    @application.post("/echo")
    async def echo(body: Body) -> Any:
        return body.value

    return application


async def post(content: Any, content_type: str | None = "application/json") -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app()), base_url="http://test"
    ) as client:
        return await client.post("/echo", content=content, headers=headers)


async def test_a_bent_body_is_a_422_problem_naming_what_is_wrong() -> None:
    response = await post('{"value": 1, "value": NaN}')
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "urn:leadtrail:problem:validation-error"
    assert problem["errors"] == [
        {"field": "body", "message": "NaN is not a JSON number", "code": "json_invalid"}
    ]


async def test_good_bodies_chunked_or_not_reach_the_route_unchanged() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b'{"value": ', b'[1, "x", ', b"2.5]}"):
            yield part

    assert (await post(chunks())).json() == [1, "x", 2.5]
    assert (await post('{"value": 7}', "application/merge-patch+json")).json() == 7
    plain = await post('{"value": NaN}', "text/plain")
    assert plain.status_code == 422, "not read as JSON: the route's own validation answers"
    assert plain.json()["errors"][0]["code"] != "json_invalid"
    broken = await post('{"value": ')
    assert broken.status_code == 422
    assert broken.json()["errors"][0]["message"] == "JSON decode error", "FastAPI's own answer"
    too_large = await post(json.dumps({"value": "x" * 2000}))
    assert too_large.status_code == 413
