"""A store that does not answer makes a console page a 503 with Retry-After, within the
page's deadline: never a hung tab. And the login's limits.

The store here is a stand-in (no socket): pymongo 4.20's async client leaves a socket
unclosed when a connect to a refusing port is cancelled, which the garbage collector reports
in whatever test runs next."""

from __future__ import annotations

import asyncio
import base64
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.errors import ServerSelectionTimeoutError

from console.accounts import Account
from console.app import create_console_app
from console.runtime import ConsoleRuntime
from console.sampler import MetricsSampler
from console.sessions import COOKIE
from console.settings import ConsoleSettings
from services.common.clock import SystemClock
from services.common.crypto import InMemoryDataKeyring, PiiCipher
from services.common.http import RateLimiter
from services.common.store import Document
from services.common.tenants import TenantDirectory


class Wedged:
    """A store that takes a query and never answers (``hang``) or fails it at once."""

    def __init__(self, hang: bool) -> None:
        self.hang = hang

    def __getitem__(self, name: str) -> Wedged:
        return self

    def find(self, *args: Any, **kwargs: Any) -> Wedged:
        return self

    def __aiter__(self) -> Wedged:
        return self

    async def __anext__(self) -> Document:
        if self.hang:
            await asyncio.Event().wait()
        raise ServerSelectionTimeoutError("no server answered")


@pytest.mark.parametrize("hang", [True, False], ids=["hangs", "fails"])
async def test_a_store_that_does_not_answer_is_a_503_page(tmp_path: Path, hang: bool) -> None:
    """Within the page's deadline when the store hangs; at once when it fails."""
    TenantDirectory(tmp_path).add("Acme", tenant_id="acme")
    settings = ConsoleSettings(
        kek=base64.b64encode(os.urandom(32)).decode(),
        console_request_timeout_s=0.5,
        config_dir=tmp_path,
        retry_after_s=7,
    )
    app = create_console_app(settings, service_urls={})
    publisher: Any = None  # a GET publishes nothing
    store: Any = Wedged(hang)
    app.state.runtime = ConsoleRuntime(
        settings,
        store,
        PiiCipher(InMemoryDataKeyring()),
        publisher,
        SystemClock(),
        MetricsSampler({}, interval_s=5, timeout_s=1),
    )
    account = Account("ops@x.test", "operator", None, datetime.now(UTC))
    app.state.console.accounts.get = lambda account_id: account  # the account file, as read
    session_id, _ = app.state.console.sessions.open(account)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://console", cookies={COOKIE: session_id}
    ) as http:
        response = await http.get("/requests")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert "try again in a moment" in response.text


async def test_made_up_account_names_do_not_buy_unlimited_login_attempts(tmp_path: Path) -> None:
    """Per address first (20, then one every 3 s), whatever account each attempt names."""
    settings = ConsoleSettings(kek=base64.b64encode(os.urandom(32)).decode(), config_dir=tmp_path)
    app = create_console_app(settings, service_urls={})
    # The same limits on a frozen clock: no token comes back while the test runs.
    console = app.state.console
    console.logins_per_address = RateLimiter(1 / 3, 20, now=lambda: 0.0)
    console.logins = RateLimiter(0.1, 5, now=lambda: 0.0)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
        form = (await http.get("/login")).text
        token = form.split('name="login_token" value="')[1].split('"')[0]
        statuses = [
            (
                await http.post(
                    "/login",
                    data={"account": f"guess{n}@x.test", "password": "p", "login_token": token},
                )
            ).status_code
            for n in range(21)
        ]
    assert statuses[:20] == [401] * 20
    assert statuses[20] == 429
