"""What every ``leadtrail`` command group shares: the config-dir option, one-line errors, the
stack's settings, publishing an operator event and reading the deployment's database, each
with a deadline and a clear message when Kafka or the store does not answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer
from aiokafka.errors import KafkaError
from pymongo.errors import PyMongoError

from contracts import EventEnvelope
from ops.kafka_log import KafkaLogError
from services.common.publisher import EventPublisher
from services.common.settings import CommonSettings

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from services.common.crypto import PiiCipher
    from services.common.store import Document

T = TypeVar("T")

__all__ = [
    "UNREACHABLE",
    "ConfigDir",
    "fail",
    "from_database",
    "known_tenant",
    "operator_settings",
    "publish",
]

UNREACHABLE = (KafkaError, KafkaLogError, PyMongoError, OSError)
"""What Kafka or the store raise when they cannot be reached or do not answer in time."""


ConfigDir = typer.Option(
    Path(".run/config"),
    "--config-dir",
    envvar="LEADTRAIL_CONFIG_DIR",
    help="where tenants.json lives (the services read the same directory)",
)


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def operator_settings() -> CommonSettings:
    from pydantic import ValidationError

    try:
        return CommonSettings()
    except ValidationError as error:
        missing = ", ".join(f"LEADTRAIL_{str(e['loc'][0]).upper()}" for e in error.errors())
        raise fail(f"no stack settings ({missing}): start one with `make up` or set them") from None


def publish(action: Callable[[EventPublisher], Awaitable[EventEnvelope]]) -> EventEnvelope:
    from ops.operator import operator_publisher

    async def run() -> EventEnvelope:
        async with operator_publisher(operator_settings()) as publisher:
            return await asyncio.wait_for(action(publisher), timeout=30)

    try:
        return asyncio.run(run())
    except TimeoutError:
        raise fail("Kafka did not acknowledge within 30 s; nothing was changed") from None


def from_database(
    read: Callable[[AsyncDatabase[Document], PiiCipher], Awaitable[T]],
    *expected: type[Exception],
) -> T:
    """Run ``read`` on the deployment's database (and keyring); an ``expected`` error, or a
    database that cannot be reached, is one error line and exit 1."""
    from ops.export import open_database

    settings = operator_settings()

    async def run() -> T:
        async with open_database(settings) as (db, cipher):
            return await read(db, cipher)

    try:
        return asyncio.run(run())
    except expected as error:
        raise fail(str(error)) from None
    except UNREACHABLE as error:
        raise fail(f"cannot read MongoDB: {type(error).__name__}: {error}") from None


def known_tenant(tenant: str, config_dir: Path) -> None:
    from services.common.tenants import TenantDirectory

    if TenantDirectory(config_dir).get(tenant) is None:
        raise fail(f"no tenant {tenant!r} (see: leadtrail tenants list)")
