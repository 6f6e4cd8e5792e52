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


UNAVAILABLE = (PyMongoError, KafkaError, KafkaLogError, OSError)
"""What the store and Kafka raise when they cannot be reached or do not answer."""


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
    _reports: dict[str | None, Report] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.finished_at is None

    def report_for(self, tenant_id: str | None) -> Report | None:
        """The report of ``tenant_id``'s chains (``None``: every tenant's), once done; judged
        once per tenant, not on every view."""
        if self.verifier is None or self.running:
            return None
        if tenant_id not in self._reports:
            self._reports[tenant_id] = self.verifier.report(tenant_id)
        return self._reports[tenant_id]


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
        """A page's reads: at most ``console_request_timeout_s`` in all, else a 503."""
        try:
            async with asyncio.timeout(self.settings.console_request_timeout_s):
                yield
        except TimeoutError:
            raise DependencyTimeoutError(
                f"Kafka or the store did not answer within "
                f"{self.settings.console_request_timeout_s:g} s"
            ) from None
        except UNAVAILABLE as error:
            raise DependencyTimeoutError(
                f"Kafka or the store is unavailable ({type(error).__name__})"
            ) from None

    @asynccontextmanager
    async def unavailable_as_503(self) -> AsyncIterator[None]:
        """An action's writes: never cancelled half-way by the page's deadline (each store
        operation and Kafka send has its own), a dependency that fails them is a 503."""
        try:
            yield
        except (TimeoutError, *UNAVAILABLE) as error:
            raise DependencyTimeoutError(
                f"Kafka or the store is unavailable ({type(error).__name__})"
            ) from None

    def claim_verification(self, by: str) -> Verification | None:
        """A new verification run, or None while one is running (no await between the check
        and the claim: two posts at once get one run)."""
        if self.verification is not None and self.verification.running:
            return None
        self.verification = Verification(started_at=self.now(), started_by=by)
        return self.verification

    def abandon_verification(self, run: Verification) -> None:
        """Give up a claimed run that was never started (its event could not be published)."""
        if self.verification is run:
            self.verification = None

    def start_verification(self, run: Verification) -> None:
        """Verify the whole log in the background (Kafka's stall deadline bounds the read)."""
        self._verify_task = asyncio.create_task(self._verify(run))

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
