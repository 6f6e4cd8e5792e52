"""``leadtrail replay``: rebuild a service's read models from the topics into fresh collections,
compare them with the live ones, and swap them in.

The rebuild runs the same projection the live handlers fold before they react (each service's
declaration names its read models and its ``projector``, :mod:`services.common.declaration`),
folding the events in memory (:mod:`ops.replay_memory`) and then
writing the result into collections named ``<name>_<suffix>`` (:class:`Suffixed`), so nothing
live is written and nothing is published, sent to a CRM or done to a key. Events are read up to
the end offsets at the start (or ``--to``) and applied one after the other in the order of
:mod:`ops.replay_source` (each partition in offset order, so one subject's events in theirs;
the topics merged by timestamp). A record that is not a valid event, or whose projection
fails, is counted and reported (live, it went to the dead-letter topic); the rebuild goes on,
and cannot be swapped.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from contracts import REGISTRY, EventEnvelope
from ops.replay_memory import MemoryCollections, load, write_out
from ops.replay_source import (
    OffsetRange,
    ReplayInputError,
    StartPoint,
    partitions_of,
    plan_offsets,
    read_merged,
)
from services import declarations
from services.common.declaration import Projector, ServiceDeclaration
from services.common.logging import get_logger
from services.common.pipeline import VERSION_FIELD
from services.common.store import APPLIED_FIELD, Document, Suffixed

__all__ = [
    "IGNORED_FIELDS",
    "SERVICES",
    "Difference",
    "Lag",
    "ReplayInputError",
    "ReplayResult",
    "SwapError",
    "check_suffix",
    "compare",
    "consumer_lag",
    "diff_documents",
    "replay",
    "spec_for",
    "swap",
]

log = get_logger(__name__)

IGNORED_FIELDS = frozenset({APPLIED_FIELD, VERSION_FIELD})
"""Bookkeeping that legitimately differs: the window of recently applied event ids (its
trimming depends on write history, and live keeps ids of redeliveries) and the documents'
versions (they count writes, and live writes in batches and races)."""
SUFFIX = re.compile(r"^[A-Za-z0-9]{1,32}$")
NOT_IMPLEMENTED = 238

Progress = Callable[[int], None]
WriteProgress = Callable[[int], None]


ReadModelSpec = ServiceDeclaration[Any, Any]
"""What replay reads of a service: its declaration (read models, operational collections,
subscriptions, projector)."""
SERVICES: dict[str, ReadModelSpec] = {
    declaration.name: declaration for declaration in declarations()
}


class SwapError(RuntimeError):
    pass


def spec_for(service: str) -> ReadModelSpec:
    if service not in SERVICES:
        raise ReplayInputError(
            f"unknown service {service!r}: choose one of {', '.join(sorted(SERVICES))}"
        )
    return SERVICES[service]


def check_suffix(suffix: str) -> str:
    if not SUFFIX.match(suffix):
        raise ReplayInputError(f"--into {suffix!r}: use 1 to 32 letters or digits")
    taken = {name for spec in SERVICES.values() for name in spec.read_models} | {
        c.name for spec in SERVICES.values() for c in spec.operational
    }
    clashes = [
        f"{name}_{suffix}"
        for spec in SERVICES.values()
        for name in spec.read_models
        if f"{name}_{suffix}" in taken
    ]
    if clashes:
        raise ReplayInputError(f"--into {suffix!r} would name live collections: {clashes}")
    return suffix


@dataclass
class ReplayResult:
    service: str
    suffix: str
    ranges: dict[TopicPartition, OffsetRange]
    collections: list[str]
    read: int = 0
    applied: int = 0
    skipped: int = 0
    written: int = 0
    """Documents written into the target collections."""
    invalid: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def total(self) -> int:
        return sum(span.count for span in self.ranges.values())

    @property
    def per_second(self) -> float:
        return self.read / self.elapsed_s if self.elapsed_s else 0.0


def _decode(record: Any, wanted: frozenset[str], result: ReplayResult) -> EventEnvelope | None:
    """The envelope, if this service handles it (as the live consumer filters)."""
    header = next(
        (v.decode(errors="replace") for k, v in record.headers or () if k == "type"), None
    )
    if header is not None and header not in wanted:
        return None
    try:
        envelope = EventEnvelope.model_validate_json(record.value or b"")
    except ValidationError as error:
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        result.invalid.append(f"{where}: {error.error_count()} validation error(s)")
        return None
    return envelope if envelope.type in wanted else None


async def replay(
    spec: ReadModelSpec,
    *,
    bootstrap: str,
    topic_prefix: str,
    db: AsyncDatabase[Document],
    suffix: str,
    start: StartPoint = None,
    to: datetime | None = None,
    on_plan: Callable[[int], None] | None = None,
    on_progress: Progress | None = None,
    on_write: WriteProgress | None = None,
) -> ReplayResult:
    """Rebuild ``spec``'s read models into ``<name>_<suffix>``.

    The events are folded in memory (:mod:`ops.replay_memory`), one after the other in the
    merged order, then every resulting document is written once and the indexes built. Without
    ``start`` the rebuild starts from nothing; with it, events from there are applied on top of
    what the target collections hold (events already applied are skipped by their ids).
    ``on_write(total)`` is told when the writing begins, and ``on_progress`` then counts the
    documents written.
    """
    check_suffix(suffix)
    target = Suffixed(db, suffix)
    names = {name: target.name(name) for name in spec.read_models}
    wanted = {topic_prefix + t.name: spec.wanted(REGISTRY, t.name) for t in spec.topics}
    partitions = await partitions_of(bootstrap, wanted)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        ranges = await plan_offsets(consumer, partitions, start=start, to=to)
        result = ReplayResult(spec.name, suffix, ranges, list(names.values()))
        if on_plan is not None:
            on_plan(result.total)
        memory = MemoryCollections()
        began = time.perf_counter()
        if start is not None:
            existing = set(await db.list_collection_names())
            await load(memory, db, {n: t for n, t in names.items() if t in existing})
        projector = spec.projector(memory)
        async for batch in read_merged(consumer, ranges):
            envelopes = []
            for record in batch:
                envelope = _decode(record, wanted[record.topic], result)
                if envelope is None:
                    result.skipped += 1
                else:
                    envelopes.append(envelope)
            await _fold(projector, envelopes, result)
            result.read += len(batch)
            if on_progress is not None:
                on_progress(len(batch))
    finally:
        await consumer.stop()
    written = sum(len(memory.collection(name).documents()) for name in names)
    if on_write is not None:
        on_write(written)
    result.written = await write_out(memory, db, names, on_progress)
    await spec.projector(target).ensure_indexes()
    result.elapsed_s = time.perf_counter() - began
    return result


async def _fold(
    projector: Projector, envelopes: Sequence[EventEnvelope], result: ReplayResult
) -> None:
    """Fold a batch as the live pipeline does: whole, or, when an event of it fails, again
    one event at a time, so that only the failing events are reported (live, they went to
    the dead-letter topic) and the rest are applied (already applied ones are skipped by
    their ids)."""
    try:
        await projector.apply_all(envelopes)
    except Exception as error:  # which event failed is found one by one below
        log.debug("batch failed; folding it one event at a time", error=str(error)[:200])
    else:
        result.applied += len(envelopes)
        return
    for envelope in envelopes:
        try:
            await projector.apply(envelope)
            result.applied += 1
        except Exception as error:  # live, this went to the dead-letter topic
            result.failed.append(f"{envelope.type} {envelope.id}: {type(error).__name__}: {error}")


# -- are the live consumers where the replay stopped? ----------------------------------------
@dataclass(frozen=True)
class Lag:
    group_id: str
    partition: TopicPartition
    committed: int
    """-1: nothing committed."""
    end: int

    def __str__(self) -> str:
        where = f"{self.partition.topic}[{self.partition.partition}]"
        relation = "behind" if self.committed < self.end else "past"
        return (
            f"{self.group_id} on {where}: committed {self.committed}, {relation} "
            f"the replay's end offset {self.end}"
        )


async def consumer_lag(
    spec: ReadModelSpec,
    bootstrap: str,
    topic_prefix: str,
    ranges: dict[TopicPartition, OffsetRange],
) -> list[Lag]:
    """Partitions where a live consumer group of the service has not committed exactly the
    end offset the replay read up to (behind: not caught up; past: it saw newer events)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        lags = []
        for subscription in spec.subscriptions:
            topics = {topic_prefix + topic.name for topic in subscription.topics}
            partitions = sorted(tp for tp in ranges if tp.topic in topics)
            committed = await admin.list_consumer_group_offsets(
                subscription.group_id, partitions=partitions
            )
            for tp in partitions:
                found = committed.get(tp)
                offset = found.offset if found is not None else -1
                end = ranges[tp].end
                if offset != end and not (offset == -1 and end == 0):
                    lags.append(Lag(subscription.group_id, tp, offset, end))
        return lags
    finally:
        await admin.close()


# -- verify ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Difference:
    collection: str
    document_id: Any
    field: str
    """Dotted path; ``(document)`` when the whole document is missing on one side."""
    live: Any
    rebuilt: Any

    def __str__(self) -> str:
        return (
            f"{self.collection}  {self.document_id}  {self.field}: "
            f"live={_short(self.live)}  rebuilt={_short(self.rebuilt)}"
        )


MISSING = "<missing>"


def _short(value: Any, limit: int = 100) -> str:
    text = repr(value) if value is not MISSING else MISSING
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _diff(path: str, live: Any, rebuilt: Any) -> Iterator[tuple[str, Any, Any]]:
    if isinstance(live, dict) and isinstance(rebuilt, dict):
        for key in sorted(set(live) | set(rebuilt), key=str):
            if not path and key in IGNORED_FIELDS:
                continue
            sub = f"{path}.{key}" if path else str(key)
            yield from _diff(sub, live.get(key, MISSING), rebuilt.get(key, MISSING))
    elif isinstance(live, list) and isinstance(rebuilt, list) and len(live) == len(rebuilt):
        for index, (a, b) in enumerate(zip(live, rebuilt, strict=True)):
            yield from _diff(f"{path}.{index}", a, b)
    elif live != rebuilt:
        yield path, live, rebuilt


def diff_documents(name: str, live: list[Document], rebuilt: list[Document]) -> list[Difference]:
    """Differences between two sets of documents of collection ``name``, matched by ``_id``."""
    by_id = {document["_id"]: document for document in rebuilt}
    differences: list[Difference] = []
    seen = set()
    for document in live:
        seen.add(document["_id"])
        other = by_id.get(document["_id"])
        if other is None:
            differences.append(Difference(name, document["_id"], "(document)", "present", MISSING))
            continue
        differences.extend(
            Difference(name, document["_id"], path, a, b)
            for path, a, b in _diff("", document, other)
        )
    differences.extend(
        Difference(name, key, "(document)", MISSING, "present") for key in by_id if key not in seen
    )
    return differences


async def compare(
    spec: ReadModelSpec, db: AsyncDatabase[Document], suffix: str
) -> list[Difference]:
    """Every difference between the live read models and the rebuilt ones, document by
    document (each collection is read whole: this is a tool for an operator, not a stream)."""
    target = Suffixed(db, suffix)
    differences: list[Difference] = []
    for name in spec.read_models:
        live = await db[name].find({}, sort=[("_id", 1)]).to_list(None)
        rebuilt = await target[name].find({}, sort=[("_id", 1)]).to_list(None)
        differences.extend(diff_documents(name, live, rebuilt))
    return differences


# -- swap --------------------------------------------------------------------------------------
async def swap(spec: ReadModelSpec, db: AsyncDatabase[Document], suffix: str) -> list[str]:
    """Put the rebuilt collections in place of the live ones, one collection at a time.

    MongoDB: ``renameCollection`` with ``dropTarget`` replaces each collection atomically (a
    reader sees the old or the new one, never none); the old one is dropped. A store without
    ``dropTarget`` (FerretDB 1.x answered ``NotImplemented``): the live collection is renamed
    to ``<name>_replaced_<suffix>`` (kept for a rollback) and the rebuilt one to the live
    name: two renames, between which the collection is absent for one round trip. Across
    collections it is never atomic.
    """
    target = Suffixed(db, suffix)
    existing = set(await db.list_collection_names())
    missing = [target.name(n) for n in spec.read_models if target.name(n) not in existing]
    if missing:
        raise SwapError(f"nothing rebuilt to swap in: {', '.join(missing)} do not exist")
    admin = db.client.admin
    done = []
    for name in spec.read_models:
        source, live = f"{db.name}.{target.name(name)}", f"{db.name}.{name}"
        try:
            await admin.command({"renameCollection": source, "to": live, "dropTarget": True})
            done.append(f"{name}: replaced atomically")
            continue
        except OperationFailure as error:
            if error.code != NOT_IMPLEMENTED:
                raise
        backup = f"{name}_replaced_{suffix}"
        if backup in existing:
            raise SwapError(f"{backup} exists from an earlier swap: drop it first")
        if name in existing:
            await admin.command({"renameCollection": live, "to": f"{db.name}.{backup}"})
        await admin.command({"renameCollection": source, "to": live})
        done.append(f"{name}: replaced; the old one is kept as {backup}")
    return done
