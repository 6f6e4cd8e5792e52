"""The audit timeline's order: by time, never an effect before its cause, each event once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from ops.audit import TimelineEntry, causal_order, hide_legacy_after_erasure

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def entry(
    event_id: str, at: datetime, position: tuple[int, int, int], cause: str | None = None
) -> TimelineEntry:
    return TimelineEntry(
        at=at,
        type=f"t.{event_id}",
        version=1,
        current_version=1,
        producer="p",
        event_id=event_id,
        causation_id=cause,
        correlation_id="c",
        topic="topic",
        facts={},
        personal=None,
        personal_state="none",
        position=position,
    )


def test_time_decides_first() -> None:
    late = entry("late", T0 + timedelta(seconds=1), (0, 0, 0))
    early = entry("early", T0, (5, 0, 9))
    assert [e.event_id for e in causal_order([late, early])] == ["early", "late"]


def test_in_the_same_millisecond_an_effect_follows_its_cause_across_topics() -> None:
    # The effect sits on a topic read first (lower position); its cause on one read later.
    effect = entry("scored", T0, (0, 1, 4), cause="answered")
    other = entry("other", T0, (0, 2, 0))
    cause = entry("answered", T0, (3, 0, 7), cause="captured")
    root = entry("captured", T0, (4, 0, 0))
    ordered = [e.event_id for e in causal_order([effect, other, cause, root])]
    assert ordered.index("captured") < ordered.index("answered") < ordered.index("scored")
    assert ordered == ["captured", "answered", "scored", "other"]


def test_an_event_id_seen_twice_is_shown_once() -> None:
    once = entry("e1", T0, (0, 0, 1))
    again = entry("e1", T0, (0, 0, 2))
    assert [e.position for e in causal_order([again, once])] == [(0, 0, 1)]


def test_a_cause_outside_the_timeline_changes_nothing() -> None:
    a = entry("a", T0, (0, 0, 1), cause="elsewhere")
    b = entry("b", T0, (0, 0, 0))
    assert [e.event_id for e in causal_order([a, b])] == ["b", "a"]


def test_legacy_clear_facts_are_hidden_up_to_the_erasure() -> None:
    """A v1 event's reviewer/attester kept in clear (upcast to a ``legacy_*`` fact) is shown
    until the subject is erased, like the encrypted fields, and not after."""
    reviewed = replace(
        entry("reviewed", T0, (0, 0, 1)),
        facts={"new_score": 40, "legacy_reviewer": "ops@acme.example"},
    )
    erasure = replace(
        entry("erasure", T0 + timedelta(seconds=1), (0, 0, 2)), type="erasure.requested"
    )
    later = replace(
        entry("later", T0 + timedelta(seconds=2), (0, 0, 3)),
        facts={"legacy_attested_by": "dpo@acme.example"},
    )
    assert hide_legacy_after_erasure([reviewed]) == [reviewed], "not erased: shown"
    shown = hide_legacy_after_erasure([reviewed, erasure, later])
    assert shown[0].facts == {"new_score": 40}
    assert shown[1] == erasure
    assert shown[2] == later, "a later event (a new capture after the erasure) is not hidden"
