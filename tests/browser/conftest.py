"""The console in a real browser: Debian's Chromium, driven headless by Playwright.

All five services run in-process on the real Kafka and store (as in tests/integration), the
console is served by uvicorn on a free loopback port, and Chromium (``make browser`` installs
Debian's package; no test tool downloads a browser) opens it. Every page a test visits is
saved as a screenshot under ``test-artifacts/console/`` and checked with axe-core.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, async_playwright

from console.accounts import AccountDirectory
from console.app import create_console_app
from console.settings import ConsoleSettings
from devstack.process import free_port
from tests.helpers import eventually
from tests.integration.cluster import Cluster, cluster
from tests.integration.lead_ingest.conftest import RULES, sample_lead

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "console"
ALL_SERVICES = [
    "lead_ingest",
    "consent_ledger",
    "retention_scheduler",
    "erasure_propagator",
    "crm_sync",
]
CHROMIUM_FLAGS = [
    # This machine's network is closed: without these Chromium tries Google's hosts at start.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SERIOUS = {"serious", "critical"}


def chromium_path() -> str:
    """Debian's Chromium, installed by ``deploy/local/chromium.sh`` when missing."""
    script = ROOT / "deploy" / "local" / "chromium.sh"
    found = subprocess.run(  # noqa: S603
        [str(script)], check=True, capture_output=True, text=True, timeout=900
    )
    path = found.stdout.strip().splitlines()[-1]
    assert shutil.which(path) or os.access(path, os.X_OK), f"no browser at {path}"
    return path


@dataclass
class Console:
    """The stack, the console's URL, its accounts' passwords and a browser."""

    stack: Cluster
    url: str
    browser: Browser
    passwords: dict[str, str]
    shots: list[Path] = field(default_factory=list)

    async def page(self) -> Page:
        context = await self.browser.new_context(viewport={"width": 1280, "height": 900})
        return await context.new_page()

    async def login(self, account: str) -> Page:
        page = await self.page()
        await page.goto(f"{self.url}/login")
        await page.get_by_label("Account").fill(account)
        await page.get_by_label("Password").fill(self.passwords[account])
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(re.compile(r".*/requests.*"))
        return page

    async def check(self, page: Page, name: str) -> None:
        """Screenshot the page into the artifacts and fail on a serious accessibility
        violation (axe-core, WCAG 2 A/AA rules)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        results = await Axe().run(page)
        serious = [
            f"{violation['id']} ({violation['impact']}): {violation['help']} at "
            + ", ".join(str(node["target"]) for node in violation["nodes"][:3])
            for violation in results.response["violations"]
            if violation["impact"] in SERIOUS
        ]
        assert not serious, f"{name}: " + "; ".join(serious)

    async def capture(self, tenant: str = "acme", email: str = "maria.rossi@example.org") -> Any:
        response = await self.stack.client("lead_ingest").post(
            "/v1/leads", json=sample_lead(email), headers=self.stack.auth(tenant)
        )
        assert response.status_code == 202, response.text
        accepted = response.json()
        await self.stack.get_json("lead_ingest", f"/v1/leads/{accepted['lead_id']}", tenant=tenant)
        return accepted

    async def erasure_request(self, lead_id: str, tenant: str = "acme") -> Any:
        response = await self.stack.client("lead_ingest").post(
            "/v1/privacy-requests",
            json={
                "type": "erasure",
                "subject": {"lead_id": lead_id},
                "verification": {"method": "tenant_attestation", "attested_by": "dpo@acme"},
            },
            headers=self.stack.auth(tenant),
        )
        assert response.status_code == 202, response.text
        return response.json()


async def _serve(app: Any, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    await eventually(
        lambda: asyncio.sleep(0, result=True if server.started else None),
        what="the console to listen",
    )
    return server, task


@pytest.fixture
async def console(kafka_bootstrap: str, mongo_url: str, tmp_path: Path) -> AsyncIterator[Console]:
    executable = await asyncio.to_thread(chromium_path)
    for tenant in ("acme", "globex"):
        (tmp_path / "tenants" / tenant).mkdir(parents=True)
        (tmp_path / "tenants" / tenant / "scoring.yaml").write_text(RULES)
    async with cluster(kafka_bootstrap, mongo_url, tmp_path, ALL_SERVICES) as stack:
        accounts = AccountDirectory(tmp_path)
        passwords = {}
        _, passwords["ops@leadtrail.test"] = accounts.add("ops@leadtrail.test", "operator", None)
        for tenant in ("acme", "globex"):
            _, passwords[f"dpo@{tenant}.test"] = accounts.add(f"dpo@{tenant}.test", "dpo", tenant)
        port = free_port()
        settings = ConsoleSettings.model_validate(
            {**stack.base, "http_port": port, "console_metrics_interval_s": 1.0}
        )
        server, serving = await _serve(create_console_app(settings, service_urls={}), port)
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=executable, headless=True, args=CHROMIUM_FLAGS
                )
                try:
                    yield Console(stack, f"http://127.0.0.1:{port}", browser, passwords)
                finally:
                    await browser.close()
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, timeout=30)
