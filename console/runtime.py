"""What the console's pages share, built once per process: settings, the store and keyring,
the operator's publisher, the templates, the metrics sampler and the last verification.

Every page's reads run under :meth:`ConsoleRuntime.deadline`: Kafka or the store not answering
in ``console_request_timeout_s`` becomes a 503 page with ``Retry-After``, never a hung tab.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka.errors import KafkaError
from fastapi import Request
from fastapi.templating import Jinja2Templates
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from console.sampler import MetricsSampler
from console.settings import ConsoleSettings
from console.templating import templates
from ops.kafka_log import KafkaLogError
from ops.verify import Report, Verifier, VerifyError, read_log, resolve_topics
from services.common.clock import Clock
from services.common.crypto import PiiCipher
from services.common.logging import get_logger
from services.common.publisher import EventPublisher
from services.common.settings import integrity_key_bytes
from services.common.store import Document

__all__ = ["ConsoleRuntime", "DependencyTimeoutError", "Verification", "runtime_of"]

log = get_logger("console")


class DependencyTimeoutError(Exception):
    """Kafka or the store did not answer a page's reads in time: the app answers 503."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


@dataclass
class Verification:
    """One run of the log's verification (``leadtrail verify``), started from the console."""

    started_at: datetime
    started_by: str
    records: int = 0
    finished_at: datetime | None = None
    error: str | None = None
    verifier: Verifier | None = None

    @property
    def running(self) -> bool:
        return self.finished_at is None

    def report_for(self, tenant_id: str | None) -> Report | None:
        """The report of ``tenant_id``'s chains (``None``: every tenant's), once done."""
        if self.verifier is None or self.running:
            return None
        return self.verifier.report(tenant_id)


@dataclass
class ConsoleRuntime:
    settings: ConsoleSettings
    db: AsyncDatabase[Document]
    cipher: PiiCipher
    publisher: EventPublisher
    clock: Clock
    sampler: MetricsSampler
    templates: Jinja2Templates = field(default_factory=lambda: templates)
    verification: Verification | None = None
    _verify_task: asyncio.Task[None] | None = None

    def now(self) -> datetime:
        return self.clock.now()

    @asynccontextmanager
    async def deadline(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.settings.console_request_timeout_s):
                yield
        except TimeoutError:
            raise DependencyTimeoutError(
                f"Kafka or the store did not answer within "
                f"{self.settings.console_request_timeout_s:g} s"
            ) from None
        except (PyMongoError, KafkaError, KafkaLogError, OSError) as error:
            raise DependencyTimeoutError(
                f"Kafka or the store is unavailable ({type(error).__name__})"
            ) from None

    def start_verification(self, by: str) -> bool:
        """Start verifying the whole log in the background; False if one is running."""
        if self.verification is not None and self.verification.running:
            return False
        self.verification = Verification(started_at=self.now(), started_by=by)
        self._verify_task = asyncio.create_task(self._verify(self.verification))
        return True

    async def _verify(self, run: Verification) -> None:
        settings = self.settings
        try:
            key = integrity_key_bytes(settings.integrity_key, settings.kek)
            topics = resolve_topics([], settings.topic_prefix)
            verifier = Verifier(key, topics=tuple(topics.values()))
            async for record in read_log(settings.kafka_bootstrap, topics):
                verifier.add(record)
                run.records += 1
            run.verifier = verifier
        except (VerifyError, ValueError, KafkaError, OSError) as error:
            run.error = str(error)[:500]
        except Exception as error:
            log.exception("verification failed")
            run.error = f"{type(error).__name__}: {str(error)[:400]}"
        finally:
            run.finished_at = self.now()

    async def aclose(self) -> None:
        if self._verify_task is not None and not self._verify_task.done():
            self._verify_task.cancel()


def runtime_of(request: Request) -> ConsoleRuntime:
    runtime: ConsoleRuntime = request.app.state.runtime
    return runtime
