"""The HTTP client the load-generating benchmarks post with.

aiohttp, not httpx (which the services and tests use): a load generator runs on the same two
cores as the stack it measures, so every millisecond it spends is one the stack does not get.
Measured on this machine, 32 clients posting lead bodies to an empty FastAPI handler for 15 s:
httpx 176 requests/s with its process at full CPU (5.9 ms of CPU per request), aiohttp
1,385 requests/s at 0.5 ms per request. With httpx the ingest benchmark measured its own client.
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any, Self

import aiohttp

TransportError: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError)
"""What a request raises when the connection, not the server's answer, failed."""


class BenchClient:
    """POSTs JSON to one service over a pool of ``connections`` kept-alive connections."""

    def __init__(
        self,
        base_url: str,
        *,
        connections: int,
        timeout_s: float,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._base_url = base_url
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._headers = headers or {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            self._base_url,
            connector=aiohttp.TCPConnector(limit=self._connections),
            timeout=self._timeout,
            headers=self._headers,
            json_serialize=json.dumps,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(
        self, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """``(status, decoded JSON body or None)``; raises one of ``TransportError``."""
        if self._session is None:
            raise RuntimeError("BenchClient is used outside `async with`")
        async with self._session.post(path, json=body, headers=headers) as response:
            raw = await response.read()
            try:
                return response.status, json.loads(raw) if raw else None
            except ValueError:
                return response.status, None
