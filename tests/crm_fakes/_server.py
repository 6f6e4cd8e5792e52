"""The machinery every fake CRM shares: a uvicorn server on a free 127.0.0.1 port, a log of every
request, injected failures and delays, and going down and up again.

A subclass provides the vendor's Starlette app (``build_app``), its error body
(``error_response``), and optionally ``intercept`` (auth, rate limits: answer before routing),
``extra_headers`` (added to every response) and ``clear_store``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Self
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

__all__ = ["Failure", "FakeServer", "RecordedRequest"]


@dataclass
class RecordedRequest:
    """One request as the fake received it. Header names are lower case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int | None = None  # the status the fake answered with
    received_at: float = field(default_factory=time.monotonic)  # for latency benchmarks

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Failure:
    """An injected failure: answer ``status`` with the vendor's error body."""

    status: int
    retry_after: float | str | None = None
    message: str | None = None
    code: str | None = None


class _Server(uvicorn.Server):
    """uvicorn, minus its SIGINT/SIGTERM handlers: the test runner keeps its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class _Running:
    server: _Server
    task: asyncio.Task[None]
    sock: socket.socket = field(repr=False)


class FakeServer:
    """Base class of the fakes. Use ``async with SomeFake.running(...) as fake:``."""

    vendor = "fake"

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._failures: deque[Failure] = deque()
        self._delays: deque[float] = deque()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._mode: Literal["up", "503", "refuse"] = "up"
        self._port: int | None = None
        self._running: _Running | None = None
        self.app = self.build_app()

    # -- to override -------------------------------------------------------------------
    def build_app(self) -> Starlette:
        raise NotImplementedError

    def error_response(self, status: int, message: str, code: str | None) -> Response:
        raise NotImplementedError

    async def intercept(self, request: RecordedRequest) -> Response | None:
        """Answer before routing (bad credentials, rate limit), or None to route."""
        return None

    def extra_headers(self, request: RecordedRequest) -> dict[str, str]:
        return {}

    def clear_store(self) -> None:
        return None

    # -- lifecycle ---------------------------------------------------------------------
    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, **options: Any) -> AsyncIterator[Self]:
        """Start a fake on a free loopback port; stop it (and close its sockets) on exit."""
        fake = cls(**options)
        await fake.start()
        try:
            yield fake
        finally:
            await fake.stop()

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the fake has not been started")
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        if self._running is not None:
            return
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only when
        # the listener says TCP, and without it every JSON answer waits ~40 ms (Nagle + ACK).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self._port or 0))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._asgi,
            interface="asgi3",
            lifespan="off",
            ws="none",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=1,
        )
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name=f"{self.vendor}-fake")
        self._running = _Running(server, task, sock)
        while not server.started:
            if task.done():
                self._running = None
                sock.close()
                await task  # raises what went wrong
                raise RuntimeError(f"{self.vendor} fake stopped while starting")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        running, self._running = self._running, None
        if running is None:
            return
        running.server.should_exit = True
        try:
            await running.task
        finally:
            running.sock.close()

    async def down(self, mode: Literal["refuse", "503"] = "refuse") -> None:
        """``refuse``: stop listening (connections are refused; the port is kept for ``up``).
        ``503``: keep listening but answer every request 503 with the vendor's error body."""
        if mode == "refuse":
            await self.stop()
        self._mode = mode

    async def up(self) -> None:
        self._mode = "up"
        await self.start()

    async def reset(self) -> None:
        """Forget requests, pending failures and stored records; be up again."""
        self.requests.clear()
        self._failures.clear()
        self._delays.clear()
        self.clear_store()
        await self.up()

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        retry_after: float | str | None = None,
        message: str | None = None,
        code: str | None = None,
    ) -> None:
        """Answer the next ``n`` requests with ``status`` (and ``Retry-After`` when given; a
        number of seconds or an HTTP-date), whatever they ask, before checking credentials."""
        failure = Failure(status, retry_after, message, code)
        self._failures.extend([failure] * n)

    def delay_next(self, n: int = 1, seconds: float = 1.0) -> None:
        """Hold each of the next ``n`` requests for ``seconds`` before handling it (timeouts)."""
        self._delays.extend([seconds] * n)

    async def idle(self) -> None:
        """Wait until every request received so far has been answered (delayed ones too).
        Wrap it in ``asyncio.timeout`` to bound the wait."""
        await self._idle.wait()

    # -- the ASGI entry ----------------------------------------------------------------
    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off; nothing else is expected
            return
        self._in_flight += 1
        self._idle.clear()
        try:
            await self._handle(scope, receive, send)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", [])
        }
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        record = RecordedRequest(scope["method"], scope["path"], query, headers, body)
        self.requests.append(record)

        async def send_recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                extra = self.extra_headers(record)
                added = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        response = await self._early_response(record)
        if response is not None:
            await response(scope, replay, send_recording)
        else:
            await self.app(scope, replay, send_recording)

    async def _early_response(self, record: RecordedRequest) -> Response | None:
        if self._delays:
            await asyncio.sleep(self._delays.popleft())
        if self._mode == "503":
            return self.error_response(503, "Service Unavailable", None)
        if self._failures:
            failure = self._failures.popleft()
            response = self.error_response(
                failure.status, failure.message or _default_message(failure.status), failure.code
            )
            if failure.retry_after is not None:
                response.headers["Retry-After"] = str(failure.retry_after)
            return response
        return await self.intercept(record)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _default_message(status: int) -> str:
    return {
        400: "Bad request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not found",
        429: "Too many requests",
        500: "Internal server error",
        502: "Bad gateway",
        503: "Service unavailable",
    }.get(status, "Injected failure")
