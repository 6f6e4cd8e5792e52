"""The verifier on hand-made logs: every alteration, removal and reordering inside a chain is
found at the right offset; redeliveries, void positions and old unsealed events are not."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from contracts import EventEnvelope
from ops.cli import app
from ops.verify import Finding, LogRecord, Report, Verifier
from services.common.integrity import ChainSealer, mac_of

KEY = os.urandom(32)


def envelope(n: int, tenant: str = "acme", event_type: str = "lead.captured") -> EventEnvelope:
    return EventEnvelope(
        type=event_type,
        version=1,
        occurred_at=datetime(2026, 11, 1, 9, 30, tzinfo=UTC),
        tenant_id=tenant,
        subject_id=f"sub-{n % 3}",
        correlation_id=f"corr-{n}",
        producer="lead-ingest",
        data={"n": n, "source": "web_form", "score": n / 4},
    )


class Log:
    """Records as Kafka would hold them: offsets count up per topic-partition."""

    def __init__(self) -> None:
        self.records: list[LogRecord] = []
        self._next: dict[tuple[str, int], int] = defaultdict(int)

    def append(
        self, event: EventEnvelope, *, topic: str = "lead-events", partition: int = 0
    ) -> LogRecord:
        return self.append_raw(
            topic,
            partition,
            event.model_dump_json().encode(),
            key=event.kafka_key(),
            headers=[(k, v.encode()) for k, v in event.kafka_headers().items()],
        )

    def append_raw(
        self,
        topic: str,
        partition: int,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> LogRecord:
        record = LogRecord(topic, partition, self._next[topic, partition], key, value, headers)
        self._next[topic, partition] += 1
        self.records.append(record)
        return record


def verify(records: Sequence[LogRecord], tenant: str | None = None) -> Report:
    verifier = Verifier(KEY)
    for record in records:
        verifier.add(record)
    return verifier.report(tenant)


def chain(count: int, sealer: ChainSealer | None = None) -> list[EventEnvelope]:
    sealer = sealer or ChainSealer(KEY, "lead-ingest")
    return [sealer.seal(envelope(n))[0] for n in range(count)]


def on_one_partition(events: Sequence[EventEnvelope]) -> list[LogRecord]:
    log = Log()
    return [log.append(event) for event in events]


def kinds_at(report: Report) -> set[tuple[str, int, int]]:
    return {(f.kind, f.partition, f.offset) for f in report.findings}


def test_a_clean_log_over_topics_and_partitions_has_no_findings() -> None:
    log = Log()
    sealer = ChainSealer(KEY, "lead-ingest")
    other = ChainSealer(KEY, "consent-ledger")
    for n in range(12):
        topic, kind = (
            ("lead-events", "lead.captured") if n % 3 else ("consent-events", "consent.granted")
        )
        event = (sealer if n % 2 else other).seal(envelope(n, event_type=kind))[0]
        log.append(event, topic=topic, partition=n % 4)
    report = verify(log.records)
    assert report.findings == []
    assert report.clean
    assert report.chains == 2
    assert report.topics["lead-events"].sealed + report.topics["consent-events"].sealed == 12


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_single_byte_change_is_found_at_its_offset(data: st.DataObject) -> None:
    records = on_one_partition(chain(4))
    index = data.draw(st.integers(0, len(records) - 1))
    original = records[index].value or b""
    position = data.draw(st.integers(0, len(original) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != original[position]))
    altered = original[:position] + bytes([byte]) + original[position + 1 :]
    records[index] = replace(records[index], value=altered)
    report = verify(records)
    try:
        same_json = json.loads(altered) == json.loads(original)
    except ValueError:
        same_json = False
    if same_json:  # e.g. 1e-7 spelt 1E-7: the same event, not a change
        return
    assert any(f.offset == index for f in report.findings), report.findings
    assert {f.kind for f in report.findings if f.offset == index} <= {"altered", "malformed"}


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _leaves(item, (*path, key))]
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, (*path, i))] or [
            path
        ]
    return [path]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_field_changed_is_found_at_its_offset(data: st.DataObject) -> None:
    records = on_one_partition(chain(3))
    index = data.draw(st.integers(0, len(records) - 1))
    body = json.loads(records[index].value or b"")
    path = data.draw(st.sampled_from(_leaves(body)))
    target = body
    for step in path[:-1]:
        target = target[step]
    old = target[path[-1]]
    # a different JSON value: 0 for 0.0 is the same number (true for 1 is not)
    new = data.draw(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)).filter(
            lambda v: v != old or (type(v) is bool) != (type(old) is bool)
        )
    )
    target[path[-1]] = new
    records[index] = replace(records[index], value=json.dumps(body).encode())
    report = verify(records)
    found = {f.kind for f in report.findings if f.offset == index}
    assert found & {"altered", "malformed"}, (path, new, report.findings)


@settings(max_examples=40, deadline=None)
@given(st.permutations(range(6)).filter(lambda p: list(p) != sorted(p)))
def test_any_reordering_inside_a_partition_is_found(order: list[int]) -> None:
    events = chain(6)
    report = verify(on_one_partition([events[i] for i in order]))
    assert {f.kind for f in report.findings} == {"reorder"}, report.findings


@pytest.mark.parametrize("removed", range(5))
def test_any_removal_inside_a_chain_is_a_gap_before_the_next_event(removed: int) -> None:
    events = chain(6)
    kept = [event for n, event in enumerate(events) if n != removed]
    report = verify(on_one_partition(kept))
    [finding] = report.findings
    assert (finding.kind, finding.offset, finding.seq) == ("gap", removed, removed + 1)
    assert f"seq {removed} missing" in finding.detail


@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(0, 6), min_size=1, max_size=6))
def test_any_set_of_removals_below_a_kept_event_is_reported_as_gaps(removed: set[int]) -> None:
    events = chain(8)  # seq 7 always stays: what is removed lies inside the chain
    report = verify(on_one_partition([e for n, e in enumerate(events) if n not in removed]))
    assert {f.kind for f in report.findings} == {"gap"}
    reported = set()
    for finding in report.findings:
        span = finding.detail.split(" missing")[0].removeprefix("seq ")
        first, _, last = span.partition("..")
        reported |= set(range(int(first), int(last or first) + 1))
    assert reported == removed


def test_removing_the_tail_of_a_chain_cannot_be_seen_without_an_anchor() -> None:
    assert verify(on_one_partition(chain(6)[:4])).clean


def test_a_removed_run_is_one_finding_naming_the_events_around_it() -> None:
    events = chain(8)
    report = verify(on_one_partition(events[:2] + events[5:]))
    [finding] = report.findings
    assert (finding.kind, finding.offset) == ("gap", 2)
    assert "seq 2..4 missing (after lead-events/0@1" in finding.detail


def test_an_identical_copy_is_a_redelivery_not_a_finding() -> None:
    events = chain(4)
    log = Log()
    for event in events:
        log.append(event)
    log.append(events[1])  # a DLQ redrive sends the original bytes again, later
    report = verify(log.records)
    assert report.clean
    assert report.topics["lead-events"].redelivered == 1


def test_two_different_events_at_one_position_are_a_conflict() -> None:
    forger = ChainSealer(KEY, "lead-ingest")
    events = chain(3, forger)
    forger._seq = 1  # someone holding the key seals another event at seq 1
    forger._prev = events[0].integrity.mac if events[0].integrity else None
    forged = forger.seal(envelope(99))[0]
    report = verify(on_one_partition([*events, forged]))
    assert ("conflict", 0, 3) in kinds_at(report)


def test_a_link_to_the_wrong_previous_event_is_broken() -> None:
    events = chain(3)
    body = json.loads(events[2].model_dump_json())
    body["integrity"]["prev"] = "0" * 64
    body["integrity"]["mac"] = mac_of(KEY, body)  # resealed by someone holding the key
    log = Log()
    for event in events[:2]:
        log.append(event)
    log.append_raw(
        "lead-events",
        0,
        json.dumps(body).encode(),
        key=events[2].kafka_key(),
        headers=[(k, v.encode()) for k, v in events[2].kafka_headers().items()],
    )
    assert kinds_at(verify(log.records)) == {("broken-link", 0, 2)}


def test_a_failed_publish_declared_void_is_not_a_gap() -> None:
    sealer = ChainSealer(KEY, "lead-ingest")
    first, _ = sealer.seal(envelope(0))
    _, lost = sealer.seal(envelope(1))  # enqueued, then the broker never acknowledged it
    third, _ = sealer.seal(envelope(2))  # sealed meanwhile, and it did land
    sealer.failed(lost)
    declaring, _ = sealer.seal(envelope(3))
    log = Log()
    for event in (first, third):
        log.append(event)
    assert ("gap", 0, 1) in kinds_at(verify(log.records)), "no declaration yet: a gap"
    log.append(declaring)
    report = verify(log.records)
    assert report.clean, report.findings
    assert report.voided == 1


def test_kafka_key_and_headers_must_say_what_the_sealed_event_says() -> None:
    [event] = chain(1)
    log = Log()
    headers = dict(event.kafka_headers(), type="lead.rectified")
    log.append_raw(
        "lead-events",
        0,
        event.model_dump_json().encode(),
        key=b"someone-else",
        headers=[(k, v.encode()) for k, v in headers.items()],
    )
    [finding] = verify(log.records).findings
    assert finding.kind == "header-mismatch"
    assert finding.detail == "Kafka record not as sealed: key, type"


def test_a_sealed_event_copied_to_another_topic_is_out_of_place() -> None:
    [event] = chain(1)
    log = Log()
    log.append(event, topic="consent-events")
    [finding] = verify(log.records).findings
    assert (finding.kind, finding.topic) == ("header-mismatch", "consent-events")
    assert finding.detail == "Kafka record not as sealed: topic"


def test_old_unsealed_events_are_counted_and_garbage_is_malformed() -> None:
    log = Log()
    log.append(envelope(0))  # published before sealing existed
    log.append_raw("lead-events", 0, b"not json")
    log.append_raw("lead-events", 0, b'{"id": "x"}')
    log.append_raw("dead-letters", 0, b'{"anything": "wrapped"}')
    report = verify(log.records)
    assert [(f.kind, f.offset) for f in report.findings] == [("malformed", 1), ("malformed", 2)]
    assert report.topics["lead-events"].unsealed == 1
    assert report.topics["dead-letters"].dead_letters == 1


def test_with_a_tenant_only_its_findings_and_gaps_of_its_chains_are_reported() -> None:
    sealer = ChainSealer(KEY, "lead-ingest")
    events = [sealer.seal(envelope(n, "acme" if n < 3 else "globex"))[0] for n in range(6)]
    log = Log()
    for n, event in enumerate(events):
        if n == 4:
            body = json.loads(event.model_dump_json())
            body["data"]["n"] = 40
            log.append_raw("lead-events", 0, json.dumps(body).encode())
        elif n != 1:
            log.append(event)
    everything = {(f.kind, f.tenant_id) for f in verify(log.records).findings}
    assert everything == {("gap", "acme"), ("altered", "globex")}
    acme = verify(log.records, tenant="acme")
    assert {f.kind for f in acme.findings} == {"gap"}
    assert acme.topics["lead-events"].sealed == 2
    globex = verify(log.records, tenant="globex")
    assert {f.kind for f in globex.findings} == {"gap", "altered"}, "its chain has a gap"


def test_a_finding_reads_as_one_line_with_its_place() -> None:
    finding = Finding("gap", "lead-events", 3, 17, "seq 4 missing", "evt-1", "acme", "c/1", 5)
    assert finding.line().split() == [
        "GAP",
        "lead-events/3@17",
        "event",
        "evt-1",
        "c/1#5:",
        "seq",
        "4",
        "missing",
    ]


runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("LEADTRAIL_INTEGRITY_KEY", "LEADTRAIL_KEK", "LEADTRAIL_TOPIC_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEADTRAIL_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("LEADTRAIL_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("LEADTRAIL_INTEGRITY_KEY", "A" * 43 + "=")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--topic", "lead-eventz"], "error: unknown topic 'lead-eventz'; topics: "),
        (["--tenant", "nobody"], "error: no tenant 'nobody' (see: leadtrail tenants list)"),
        ([], "error: Kafka at 127.0.0.1:1 is unreachable"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(env: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["verify", *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_without_any_key_verify_says_which_to_set(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEADTRAIL_INTEGRITY_KEY")
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == 2
    assert "LEADTRAIL_INTEGRITY_KEY" in result.stderr


def test_help_has_examples() -> None:
    result = runner.invoke(app, ["verify", "--help"])
    assert result.exit_code == 0
    assert "Examples: leadtrail verify" in result.stdout
