"""One writer per subject at a time within a process.

Some projections still read a document, decide in Python and write it back by ``_id`` (the
retention schedule, crm-sync's outbox and subject documents). Two consumer groups of one service
doing that to one subject's document at once could lose an update. Every read model document
belongs to one subject, so serialising the work on one subject within a process (the consumers
of all its groups, crm-sync's outbox worker) removes the race; work on different subjects still
runs concurrently. Across processes it does not help, hence one replica per service until every
such write is conditional on the version it read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["SUBJECT_LOCKS", "SubjectLocks"]


class SubjectLocks:
    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._waiting: dict[tuple[str, str], int] = {}

    @asynccontextmanager
    async def hold(self, tenant_id: str, subject_id: str) -> AsyncIterator[None]:
        key = (tenant_id, subject_id)
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:  # nobody holds or waits: forget it (bounded memory)
                del self._waiting[key]
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


SUBJECT_LOCKS = SubjectLocks()
"""Process-wide: every consumer and worker of the process writes the same documents."""
