from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.common.clock import FakeClock
from services.common.settings import CommonSettings


def test_fake_clock_moves_only_forward() -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    assert clock.advance(timedelta(days=730)) == datetime(2028, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2026, 1, 1))


def test_settings_read_the_leadtrail_prefix(
    monkeypatch: pytest.MonkeyPatch, kek_b64: str, kek: bytes
) -> None:
    monkeypatch.setenv("LEADTRAIL_KEK", kek_b64)
    monkeypatch.setenv("LEADTRAIL_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    monkeypatch.setenv("LEADTRAIL_TOPIC_PREFIX", "t1.")
    settings = CommonSettings()
    assert settings.kafka_bootstrap == "127.0.0.1:19092"
    assert settings.kek_bytes() == kek
    assert settings.topic("lead-events") == "t1.lead-events"
    assert kek_b64 not in repr(settings), "secrets never appear in reprs or logs"


def test_a_bad_kek_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADTRAIL_KEK", "c2hvcnQ=")
    with pytest.raises(ValidationError, match="32 bytes"):
        CommonSettings()
    monkeypatch.delenv("LEADTRAIL_KEK")
    with pytest.raises(ValidationError, match="kek"):
        CommonSettings()
