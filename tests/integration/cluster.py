"""Several Leadtrail services in one test process, each with its real lifespan (Kafka
subscribers, MongoDB), sharing one topic prefix and database, driven over httpx's ASGI
transport. The e2e suite runs them as separate processes instead."""

from __future__ import annotations

import asyncio
import base64
import importlib
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError
from typer.testing import CliRunner, Result

from contracts import ALL_TOPICS, EventEnvelope
from ops.cli import app as cli_app
from ops.kafka_log import open_log
from services.common.clock import Clock
from services.common.declaration import Service, ServiceDeclaration
from services.common.runtime import Runtime, built_service, create_app
from services.common.settings import CommonSettings
from services.common.tenants import TenantDirectory
from services.common.topics import ensure_topics
from tests.helpers import eventually

__all__ = ["Cluster", "cluster", "read_topic"]


async def read_topic(
    bootstrap: str, topic: str, *, skip_invalid: bool = False
) -> list[EventEnvelope]:
    """All events on ``topic`` up to the end offsets it has now (the operator tools' reader,
    :mod:`ops.kafka_log`). A record that is no valid envelope fails the read, unless
    ``skip_invalid`` (a test put poison there on purpose)."""
    found: list[EventEnvelope] = []
    async with open_log(bootstrap, [topic]) as log:
        starts, ends = await log.bounds()
        async for _, records in log.batches(starts, ends):
            for record in records:
                try:
                    found.append(EventEnvelope.model_validate_json(record.value))
                except ValidationError:
                    if not skip_invalid:
                        raise
    return found


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@dataclass
class Cluster:
    base: dict[str, Any]
    config_dir: Path
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    runtimes: dict[str, Runtime] = field(default_factory=dict)
    services: dict[str, Service[Any]] = field(default_factory=dict)
    """Package name (``crm_sync``) -> the built service: its handlers and their stores."""
    keys: dict[str, str] = field(default_factory=dict)
    skip_invalid: bool = False
    """Reading a topic skips records that are no envelope (the e2e poison test leaves some)."""

    def settings_for(
        self, declaration: ServiceDeclaration[Any, Any], **extra: Any
    ) -> CommonSettings:
        settings: CommonSettings = declaration.settings.model_validate({**self.base, **extra})
        return settings

    def auditor_env(self) -> dict[str, str]:
        """What an auditor running ``leadtrail verify`` holds: the log and the integrity key,
        not the KEK nor the database."""
        return {
            "LEADTRAIL_KAFKA_BOOTSTRAP": self.base["kafka_bootstrap"],
            "LEADTRAIL_TOPIC_PREFIX": self.base["topic_prefix"],
            "LEADTRAIL_INTEGRITY_KEY": self.base["integrity_key"],
            "LEADTRAIL_CONFIG_DIR": str(self.config_dir),
        }

    def operator_env(self) -> dict[str, str]:
        """The environment ``leadtrail`` (the operator CLI) needs to work on this cluster."""
        return {
            **self.auditor_env(),
            "LEADTRAIL_MONGO_URL": self.base["mongo_url"],
            "LEADTRAIL_MONGO_DB": self.base["mongo_db"],
            "LEADTRAIL_KEK": self.base["kek"],
        }

    async def cli(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """Run ``leadtrail ARGS`` against this cluster with ``env`` (the operator's by default),
        in a thread: commands run their own event loop."""
        return await asyncio.to_thread(
            CliRunner().invoke,
            cli_app,
            list(args),
            env=self.operator_env() if env is None else env,
            catch_exceptions=False,
        )

    def auth(self, tenant: str = "acme") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tenant]}"}

    def client(self, service: str) -> httpx.AsyncClient:
        return self.clients[service]

    def topic(self, name: str) -> str:
        return f"{self.base['topic_prefix']}{name}"

    async def events(self, topic: str) -> list[EventEnvelope]:
        """Every event on a topic up to its current end offsets (reading stops at the end
        offsets, not at a quiet moment)."""
        return await read_topic(
            self.base["kafka_bootstrap"], self.topic(topic), skip_invalid=self.skip_invalid
        )

    async def wait_for_event(
        self, topic: str, predicate: Any, *, within: float = 30.0
    ) -> EventEnvelope:
        async def probe() -> EventEnvelope | None:
            for event in await self.events(topic):
                if predicate(event):
                    return event
            return None

        return await eventually(probe, within=within, what=f"an event on {topic}")

    async def get_json(
        self, service: str, path: str, tenant: str = "acme", until: Any = None
    ) -> Any:
        async def probe() -> Any:
            response = await self.clients[service].get(path, headers=self.auth(tenant))
            if response.status_code != 200:
                return None
            body = response.json()
            return body if until is None or until(body) else None

        return await eventually(probe, what=f"GET {path}")


@asynccontextmanager
async def cluster(
    kafka_bootstrap: str,
    mongo_url: str,
    config_dir: Path,
    services: list[str],
    *,
    clock: Clock | None = None,
    **extra: Any,
) -> AsyncIterator[Cluster]:
    suffix = uuid.uuid4().hex[:10]
    base: dict[str, Any] = {
        "kafka_bootstrap": kafka_bootstrap,
        "mongo_url": mongo_url,
        "mongo_db": f"it_{suffix}",
        "topic_prefix": f"it-{suffix}.",
        "kek": _key(),
        "blind_index_key": _key(),
        "unsubscribe_key": _key(),
        "integrity_key": _key(),
        "config_dir": config_dir,
        "handler_retry_backoff_s": 0.05,
        "publish_timeout_s": 5.0,
        **extra,
    }
    directory = TenantDirectory(config_dir)
    keys = {}
    _, keys["acme"] = directory.add("Acme", tenant_id="acme", default_region="IT")
    _, keys["globex"] = directory.add("Globex", tenant_id="globex", default_region="DE")
    await ensure_topics(kafka_bootstrap, base["topic_prefix"], ALL_TOPICS)
    state = Cluster(base, config_dir, keys=keys)
    async with AsyncExitStack() as stack:
        for service in services:
            declaration = importlib.import_module(f"services.{service}.declaration").DECLARATION
            settings = state.settings_for(declaration)
            app = create_app(declaration, settings, clock=clock)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=f"http://{service}"
            )
            await stack.enter_async_context(client)
            state.clients[service] = client
            state.runtimes[service] = app.state.runtime
            state.services[service] = built_service(app)
        yield state
        any_runtime = next(iter(state.runtimes.values()))
        await any_runtime.mongo.drop_database(base["mongo_db"])
