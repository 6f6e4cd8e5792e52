"""``leadtrail verify``: walk the event log and report what tampering would leave behind.

:class:`Verifier` is the pure part: fed every record of the log (any order of topics and
partitions, each partition in offset order), it checks each sealed event's MAC and then every
producer chain for gaps, reordering, conflicting duplicates and broken ``prev`` links
(docs/integrity.md). :func:`read_log` feeds it from Kafka; :func:`run_verify` is the command.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import typer
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from contracts import REGISTRY
from contracts.envelope import EventEnvelope, Integrity
from contracts.registry import UnknownEventError
from contracts.topics import ALL_TOPICS, DEAD_LETTERS
from ops.kafka_log import KafkaLogError, open_log
from services.common.integrity import mac_of
from services.common.settings import integrity_key_bytes
from services.common.tenants import TenantDirectory

__all__ = [
    "Finding",
    "LogRecord",
    "Report",
    "Verifier",
    "VerifyError",
    "read_log",
    "resolve_topics",
    "run_verify",
]

Kind = Literal[
    "altered", "malformed", "header-mismatch", "gap", "reorder", "conflict", "broken-link"
]
EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


class VerifyError(Exception):
    """A usage or environment problem: one line for the operator, exit code 2."""


class VerifySettings(BaseSettings):
    """What verify needs: the brokers, the topic prefix and the integrity key (an auditor may
    hold ``LEADTRAIL_INTEGRITY_KEY`` without the KEK)."""

    model_config = SettingsConfigDict(env_prefix="LEADTRAIL_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = Field(default="leadtrail.", pattern=r"^[A-Za-z0-9._-]{0,100}$")
    integrity_key: SecretStr | None = None
    kek: SecretStr | None = None


@dataclass(frozen=True)
class LogRecord:
    """One Kafka record, with its topic's logical name."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True)
class Finding:
    kind: Kind
    topic: str
    partition: int
    offset: int
    detail: str
    event_id: str | None = None
    tenant_id: str | None = None
    chain: str | None = None
    seq: int | None = None

    def line(self) -> str:
        where = f"{self.topic}/{self.partition}@{self.offset}"
        what = f"event {self.event_id}" if self.event_id else "record"
        position = f" {self.chain}#{self.seq}" if self.chain is not None else ""
        return f"{self.kind.upper():15} {where:28} {what}{position}: {self.detail}"


@dataclass(frozen=True)
class _Sealed:
    """A sealed event whose MAC is right: its place in its chain and in the log."""

    chain: str
    seq: int
    prev: str | None
    mac: str
    topic: str
    partition: int
    offset: int
    event_id: str
    tenant_id: str

    def where(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"


@dataclass
class TopicCounts:
    records: int = 0
    sealed: int = 0
    unsealed: int = 0
    redelivered: int = 0
    dead_letters: int = 0
    findings: int = 0


@dataclass
class Report:
    tenant: str | None
    topics: dict[str, TopicCounts]
    chains: int
    voided: int
    findings: list[Finding]

    @property
    def clean(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "tenant": self.tenant,
            "chains": self.chains,
            "voided": self.voided,
            "topics": {name: asdict(counts) for name, counts in self.topics.items()},
            "findings": [asdict(finding) for finding in self.findings],
        }


@dataclass
class Verifier:
    """Collects the log's records, then judges every chain as a whole (:meth:`report`).

    Memory: one small entry per sealed event (chains can only be judged whole).
    """

    key: bytes
    topics: tuple[str, ...] = tuple(spec.name for spec in ALL_TOPICS)
    """The topics read (the report has a row for each, even an empty one)."""
    _sealed: list[_Sealed] = field(default_factory=list)
    _altered_at: dict[tuple[str, int], Finding] = field(default_factory=dict)
    _void: set[tuple[str, int]] = field(default_factory=set)
    _findings: list[Finding] = field(default_factory=list)
    _counts: dict[tuple[str, str | None], TopicCounts] = field(
        default_factory=lambda: defaultdict(TopicCounts)
    )

    def add(self, record: LogRecord) -> None:
        if record.topic == DEAD_LETTERS.name:
            self._counts[record.topic, None].dead_letters += 1  # wrappers, not events
            return
        try:
            body = json.loads(record.value or b"")
        except ValueError:
            body = None
        tenant = body.get("tenant_id") if isinstance(body, dict) else None
        tenant = tenant if isinstance(tenant, str) else None
        counts = self._counts[record.topic, tenant]
        counts.records += 1
        if not isinstance(body, dict):
            self._flag("malformed", record, "not a JSON object", body=None)
            return
        if body.get("integrity") is None:
            self._unsealed(record, body, counts)
            return
        try:
            integrity = Integrity.model_validate(body["integrity"])
        except ValidationError as error:
            self._flag("malformed", record, f"integrity block: {_first_error(error)}", body=body)
            return
        if not hmac.compare_digest(mac_of(self.key, body), integrity.mac):
            finding = self._flag("altered", record, "MAC does not match", body, integrity)
            self._altered_at.setdefault((integrity.chain, integrity.seq), finding)
            return
        counts.sealed += 1
        self._void.update((position.chain, position.seq) for position in integrity.void)
        self._check_routing(record, body, integrity)
        self._sealed.append(
            _Sealed(
                chain=integrity.chain,
                seq=integrity.seq,
                prev=integrity.prev,
                mac=integrity.mac,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                event_id=str(body.get("id")),
                tenant_id=str(tenant),
            )
        )

    def _unsealed(self, record: LogRecord, body: dict[str, Any], counts: TopicCounts) -> None:
        try:
            EventEnvelope.model_validate(body)
        except ValidationError as error:
            self._flag("malformed", record, f"not an event: {_first_error(error)}", body=body)
            return
        counts.unsealed += 1

    def _check_routing(self, record: LogRecord, body: dict[str, Any], integrity: Integrity) -> None:
        """Kafka key and headers are outside the MAC; consumers route by them, so they must
        say what the sealed body says (as :meth:`EventEnvelope.kafka_headers` writes them)."""
        expected = {
            "type": body.get("type"),
            "version": str(body.get("version")),
            "tenant_id": body.get("tenant_id"),
            "event_id": body.get("id"),
            "correlation_id": body.get("correlation_id"),
        }
        headers = {name: value.decode(errors="replace") for name, value in record.headers}
        wrong = [name for name, value in expected.items() if headers.get(name) != value]
        if record.key != str(body.get("subject_id")).encode():
            wrong.insert(0, "key")
        if _home_topic(body) != record.topic:  # a copy on another topic reaches other consumers
            wrong.insert(0, "topic")
        if wrong:
            detail = "Kafka record not as sealed: " + ", ".join(wrong)
            self._flag("header-mismatch", record, detail, body, integrity)

    def _flag(
        self,
        kind: Kind,
        record: LogRecord,
        detail: str,
        body: dict[str, Any] | None,
        integrity: Integrity | None = None,
    ) -> Finding:
        event_id = body.get("id") if body is not None else None
        tenant = body.get("tenant_id") if body is not None else None
        finding = Finding(
            kind=kind,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            detail=detail,
            event_id=event_id if isinstance(event_id, str) else None,
            tenant_id=tenant if isinstance(tenant, str) else None,
            chain=integrity.chain if integrity is not None else None,
            seq=integrity.seq if integrity is not None else None,
        )
        self._findings.append(finding)
        return finding

    def report(self, tenant: str | None = None) -> Report:
        """Judge the chains (always whole). With ``tenant``, report what concerns that tenant:
        findings on records that name it, and gaps in every chain that carries any of its
        events (a missing event may have been the tenant's)."""
        findings = list(self._findings)
        chains: dict[str, dict[int, list[_Sealed]]] = defaultdict(lambda: defaultdict(list))
        for event in self._sealed:
            chains[event.chain][event.seq].append(event)
        redelivered: dict[tuple[str, str], int] = defaultdict(int)
        voided = 0
        for name, by_seq in chains.items():
            firsts = {
                seq: self._duplicates(events, findings, redelivered)
                for seq, events in by_seq.items()
            }
            voided += self._gaps(name, firsts, findings)
            self._order(firsts, findings)
            self._links(firsts, findings)
        if tenant is not None:
            touched = {e.chain for e in self._sealed if e.tenant_id == tenant}
            findings = [
                f
                for f in findings
                if f.tenant_id == tenant or (f.kind == "gap" and f.chain in touched)
            ]
        topics = {name: TopicCounts() for name in self.topics}
        for (topic, owner), counts in self._counts.items():
            if tenant is None or owner == tenant:
                total = topics.setdefault(topic, TopicCounts())
                for name, value in asdict(counts).items():
                    setattr(total, name, getattr(total, name) + value)
        for (topic, owner), count in redelivered.items():
            if tenant is None or owner == tenant:
                topics.setdefault(topic, TopicCounts()).redelivered += count
        for finding in findings:
            topics.setdefault(finding.topic, TopicCounts()).findings += 1
        findings.sort(key=lambda f: (f.topic, f.partition, f.offset, f.kind))
        return Report(tenant, topics, len(chains), voided, findings)

    @staticmethod
    def _duplicates(
        events: list[_Sealed], findings: list[Finding], redelivered: dict[tuple[str, str], int]
    ) -> _Sealed:
        """The first occurrence of a position; identical copies are redeliveries (a retry, a
        DLQ redrive), different events sealed at one position are a conflict."""
        first = min(events, key=lambda e: (e.topic, e.partition, e.offset))
        for other in events:
            if other is first:
                continue
            if other.mac == first.mac:
                redelivered[other.topic, other.tenant_id] += 1
            else:
                findings.append(
                    _chain_finding(
                        "conflict",
                        other,
                        f"another event is sealed at this position ({first.where()})",
                    )
                )
        return first

    def _gaps(self, chain: str, firsts: dict[int, _Sealed], findings: list[Finding]) -> int:
        present = set(firsts) | {seq for (name, seq) in self._altered_at if name == chain}
        voided = 0
        missing = sorted(set(range(max(present))) - present)
        for start, end in _ranges(missing):
            unexplained = [s for s in range(start, end + 1) if (chain, s) not in self._void]
            voided += end - start + 1 - len(unexplained)
            if not unexplained:
                continue
            after = firsts.get(end + 1)
            before = firsts.get(start - 1)
            span = f"seq {start}" if start == end else f"seq {start}..{end}"
            context = f"after {before.where()}, " if before else ""
            if after is None:  # the next position holds an altered event
                finding = self._altered_at[chain, end + 1]
                findings.append(
                    Finding(
                        "gap",
                        finding.topic,
                        finding.partition,
                        finding.offset,
                        f"{span} missing ({context}before this record)",
                        chain=chain,
                        seq=end + 1,
                    )
                )
                continue
            findings.append(
                _chain_finding("gap", after, f"{span} missing ({context}before this event)")
            )
        return voided

    @staticmethod
    def _order(firsts: dict[int, _Sealed], findings: list[Finding]) -> None:
        """In one partition a chain's events are written in ``seq`` order."""
        by_partition: dict[tuple[str, int], list[_Sealed]] = defaultdict(list)
        for event in firsts.values():
            by_partition[event.topic, event.partition].append(event)
        for events in by_partition.values():
            highest: _Sealed | None = None
            for event in sorted(events, key=lambda e: e.offset):
                if highest is not None and event.seq < highest.seq:
                    detail = f"written after seq {highest.seq} ({highest.where()})"
                    findings.append(_chain_finding("reorder", event, detail))
                elif highest is None or event.seq > highest.seq:
                    highest = event

    @staticmethod
    def _links(firsts: dict[int, _Sealed], findings: list[Finding]) -> None:
        for seq, event in firsts.items():
            previous = firsts.get(seq - 1)
            if seq == 0 and event.prev is not None:
                findings.append(
                    _chain_finding("broken-link", event, "seq 0 names a previous event")
                )
            elif seq > 0 and event.prev is None:
                findings.append(
                    _chain_finding("broken-link", event, "no link to the previous event")
                )
            elif previous is not None and event.prev != previous.mac:
                detail = f"prev is not the MAC of seq {seq - 1} ({previous.where()})"
                findings.append(_chain_finding("broken-link", event, detail))


def _chain_finding(kind: Kind, event: _Sealed, detail: str) -> Finding:
    return Finding(
        kind=kind,
        topic=event.topic,
        partition=event.partition,
        offset=event.offset,
        detail=detail,
        event_id=event.event_id,
        tenant_id=event.tenant_id,
        chain=event.chain,
        seq=event.seq,
    )


def _home_topic(body: dict[str, Any]) -> str | None:
    """The topic the registry assigns to the event's type and version."""
    version = body.get("version")
    try:
        return REGISTRY.get(str(body.get("type")), version if isinstance(version, int) else 0).topic
    except UnknownEventError:
        return None


def _ranges(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted ``numbers`` as (first, last)."""
    runs: list[tuple[int, int]] = []
    for number in numbers:
        if runs and runs[-1][1] == number - 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{'.'.join(str(part) for part in first['loc']) or 'value'}: {first['msg']}"


async def read_log(
    bootstrap: str,
    topics: dict[str, str],
    on_total: Callable[[int], None] = lambda total: None,
    on_batch: Callable[[int], None] = lambda count: None,
) -> AsyncIterator[LogRecord]:
    """Every record of ``topics`` (physical name -> logical name) from the beginning up to the
    end offsets they have when reading starts."""
    try:
        async with open_log(bootstrap, list(topics)) as log:
            starts, ends = await log.bounds()
            on_total(sum(ends[tp] - starts[tp] for tp in log.partitions))
            async for tp, records in log.batches(starts, ends):
                on_batch(len(records))
                for r in records:
                    yield LogRecord(
                        topics[tp.topic], tp.partition, r.offset, r.key, r.value, r.headers
                    )
    except KafkaLogError as error:
        raise VerifyError(str(error)) from None


def resolve_topics(names: Sequence[str], prefix: str) -> dict[str, str]:
    """Physical -> logical name of the topics ``names`` (logical or physical; none: all)."""
    known = {spec.name for spec in ALL_TOPICS}
    chosen = []
    for name in names or sorted(known):
        logical = name.removeprefix(prefix) if name not in known else name
        if logical not in known:
            raise VerifyError(f"unknown topic {name!r}; topics: {', '.join(sorted(known))}")
        chosen.append(logical)
    return {f"{prefix}{name}": name for name in chosen}


async def verify_log(
    settings: VerifySettings, topics: dict[str, str], tenant: str | None, console: Console
) -> Report:
    try:
        key = integrity_key_bytes(settings.integrity_key, settings.kek)
    except ValueError as error:
        raise VerifyError(str(error)) from None
    verifier = Verifier(key, topics=tuple(topics.values()))
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("reading the log", total=None)
        async for record in read_log(
            settings.kafka_bootstrap,
            topics,
            on_total=lambda total: progress.update(task, total=total),
            on_batch=lambda count: progress.advance(task, count),
        ):
            verifier.add(record)
    return verifier.report(tenant)


def print_report(report: Report, console: Console) -> None:
    for finding in report.findings:
        console.print(finding.line(), markup=False, highlight=False, soft_wrap=True)
    title = "the event log" + (f" (events of tenant {report.tenant})" if report.tenant else "")
    table = Table(title=title)
    columns = ("topic", "records", "sealed", "unsealed", "redelivered", "dead letters", "findings")
    for column in columns:
        table.add_column(column, justify="left" if column == "topic" else "right")
    for name, counts in report.topics.items():
        table.add_row(
            name,
            *(
                str(value)
                for value in (
                    counts.records,
                    counts.sealed,
                    counts.unsealed,
                    counts.redelivered,
                    counts.dead_letters,
                    counts.findings,
                )
            ),
        )
    console.print(table)
    voided = f", {report.voided} failed publish(es) declared void" if report.voided else ""
    console.print(f"{report.chains} chain(s){voided}", highlight=False)
    if report.clean:
        console.print("clean: no gap, reorder or altered event", highlight=False)
    else:
        console.print(f"{len(report.findings)} finding(s)", highlight=False)


def run_verify(
    *, tenant: str | None, topics: Sequence[str], as_json: bool, config_dir: Path
) -> int:
    """The ``leadtrail verify`` command: prints the report, returns the exit code."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # failures become one error line
    try:
        settings = VerifySettings()
        if tenant is not None and TenantDirectory(config_dir).get(tenant) is None:
            raise VerifyError(f"no tenant {tenant!r} (see: leadtrail tenants list)")
        chosen = resolve_topics(topics, settings.topic_prefix)
        report = asyncio.run(verify_log(settings, chosen, tenant, Console(stderr=True)))
    except (VerifyError, ValidationError) as error:
        message = _first_error(error) if isinstance(error, ValidationError) else str(error)
        typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
        return EXIT_USAGE
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        print_report(report, Console(soft_wrap=True))
    return EXIT_CLEAN if report.clean else EXIT_FINDINGS
