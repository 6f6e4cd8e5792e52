from __future__ import annotations

from datetime import UTC, datetime

from services.lead_ingest.deadlines import add_working_days, request_deadline

FRIDAY = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)


def test_working_days_skip_weekends() -> None:
    assert add_working_days(FRIDAY, 1) == datetime(2026, 11, 30, 15, 30, tzinfo=UTC)
    assert add_working_days(FRIDAY, 10) == datetime(2026, 12, 11, 15, 30, tzinfo=UTC)
    saturday = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    assert add_working_days(saturday, 1) == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_erasure_gets_two_working_weeks_others_a_month() -> None:
    erasure = request_deadline("erasure", FRIDAY, calendar_days=30, erasure_working_days=10)
    access = request_deadline("access", FRIDAY, calendar_days=30, erasure_working_days=10)
    assert erasure == datetime(2026, 12, 11, 15, 30, tzinfo=UTC)
    assert access == datetime(2026, 12, 27, 15, 30, tzinfo=UTC)
