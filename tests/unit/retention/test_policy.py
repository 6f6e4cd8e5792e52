"""Retention periods (R15, R16)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.retention_scheduler.policy import (
    DEFAULTS,
    PolicyError,
    due_at,
    load_maximums,
    validate_period,
)


def test_seed_defaults() -> None:
    assert DEFAULTS["lead_data"].period_days == 730
    assert DEFAULTS["lead_data"].anchor == "last_activity"
    assert DEFAULTS["analytics"].period_days == 760
    assert DEFAULTS["web_logs"].period_days == 7


def test_shorter_is_fine_longer_is_refused(tmp_path: Path) -> None:
    maximums = load_maximums(tmp_path)
    validate_period("lead_data", 365, maximums)
    validate_period("lead_data", 730, maximums)
    with pytest.raises(PolicyError, match="only shorten"):
        validate_period("lead_data", 731, maximums)
    with pytest.raises(PolicyError, match="unknown data category"):
        validate_period("horoscopes", 1, maximums)


def test_the_operator_sets_the_maximums(tmp_path: Path) -> None:
    (tmp_path / "retention-maximums.yaml").write_text("lead_data: 365\n")
    maximums = load_maximums(tmp_path)
    with pytest.raises(PolicyError):
        validate_period("lead_data", 400, maximums)
    (tmp_path / "retention-maximums.yaml").write_text("lead_data: -1\n")
    with pytest.raises(PolicyError):
        load_maximums(tmp_path)


def test_due_dates_count_whole_days_across_leap_years() -> None:
    anchor = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    assert due_at(anchor, 730) == datetime(2029, 2, 28, 12, 0, tzinfo=UTC)
    assert due_at(datetime(2028, 3, 1, tzinfo=UTC), 730) == datetime(2030, 3, 1, tzinfo=UTC)
