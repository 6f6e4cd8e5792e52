from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.common.clock import FakeClock, OffsetFileClock, SystemClock, UntrustedClockFileError
from services.common.runner import listen, run
from services.common.runtime import clock_for, create_app, describe_clock
from services.common.settings import CommonSettings
from tests.helpers import bare_declaration


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


def test_the_offset_file_clock_follows_the_file_and_never_runs_backwards(tmp_path: Path) -> None:
    path = tmp_path / "offset"
    clock = OffsetFileClock(path)
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5), "no file: no offset"
    path.write_text("63072000\n")
    assert clock.now() - datetime.now(UTC) > timedelta(days=729)
    os.utime(path, ns=(1, 1))  # a new mtime, as a rewrite would give
    path.write_text("60")
    with pytest.raises(ValueError, match="backwards"):
        clock.now()
    path.write_text("-5")
    os.utime(path, ns=(2, 2))
    with pytest.raises(ValueError, match=">= 0"):
        clock.now()


def test_the_test_clock_is_refused_unless_explicitly_enabled(
    monkeypatch: pytest.MonkeyPatch, kek_b64: str, tmp_path: Path
) -> None:
    monkeypatch.setenv("LEADTRAIL_KEK", kek_b64)
    monkeypatch.setenv("LEADTRAIL_TEST_CLOCK_OFFSET_FILE", str(tmp_path / "offset"))
    with pytest.raises(ValidationError, match="LEADTRAIL_ENABLE_TEST_CLOCK"):
        CommonSettings()
    assert isinstance(clock_for(CommonSettings(enable_test_clock=True)), OffsetFileClock)
    monkeypatch.delenv("LEADTRAIL_TEST_CLOCK_OFFSET_FILE")
    assert isinstance(clock_for(CommonSettings(enable_test_clock=True)), SystemClock)


@pytest.mark.parametrize(
    ("public_url", "host", "port", "base"),
    [
        ("https://leads.example.com/", "127.0.0.1", 0, "https://leads.example.com"),
        ("https://example.com/leadtrail", "0.0.0.0", 8080, "https://example.com/leadtrail"),  # noqa: S104
        (None, "127.0.0.1", 8123, "http://127.0.0.1:8123"),
        (None, "0.0.0.0", 8080, "http://127.0.0.1:8080"),  # noqa: S104
        (None, "::", 8080, "http://[::1]:8080"),
    ],
)
def test_links_start_with_the_public_url_else_the_listener(
    kek_b64: str, public_url: str | None, host: str, port: int, base: str
) -> None:
    settings = CommonSettings(kek=kek_b64, public_url=public_url, http_host=host, http_port=port)
    assert settings.public_base_url() == base


@pytest.mark.parametrize(
    "public_url",
    [
        "leads.example.com",
        "ftp://leads.example.com",
        "https://",
        "https://leads.example.com/?next=evil",
        "https://leads.example.com/#x",
        "https://user:pw@leads.example.com",
    ],
)
def test_a_public_url_is_a_plain_http_base(kek_b64: str, public_url: str) -> None:
    with pytest.raises(ValidationError, match="LEADTRAIL_PUBLIC_URL"):
        CommonSettings(kek=kek_b64, public_url=public_url)


def test_a_service_on_port_0_links_to_the_port_it_bound(kek_b64: str) -> None:
    listener, settings = listen(CommonSettings(kek=kek_b64, http_port=0))
    with listener:
        port = listener.getsockname()[1]
        assert port != 0
        assert settings.public_base_url() == f"http://127.0.0.1:{port}"


def test_the_offset_file_must_be_the_service_users_own_and_writable_by_nobody_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whoever writes the offset file can expire every lead at once."""
    path = tmp_path / "offset"
    path.write_text("0\n")
    path.chmod(0o664)
    with pytest.raises(UntrustedClockFileError, match="writable by group or others"):
        OffsetFileClock(path)
    path.chmod(0o646)
    with pytest.raises(UntrustedClockFileError, match="writable by group or others"):
        OffsetFileClock(path)
    path.chmod(0o644)
    clock = OffsetFileClock(path)
    monkeypatch.setattr("services.common.clock.os.geteuid", lambda: os.getuid() + 4242)
    with pytest.raises(UntrustedClockFileError, match="not by the service's user"):
        OffsetFileClock(path)
    monkeypatch.undo()
    # A file put in its place later (a rename) is checked before it is believed.
    scratch = tmp_path / "offset.tmp"
    scratch.write_text("63072000\n")
    scratch.chmod(0o666)
    scratch.replace(path)
    os.utime(path, ns=(5, 5))
    with pytest.raises(UntrustedClockFileError, match="writable by group or others"):
        clock.now()


def test_the_service_refuses_to_start_on_an_untrusted_offset_file(
    tmp_path: Path, kek_b64: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "offset"
    path.write_text("0\n")
    path.chmod(0o666)
    settings = CommonSettings(
        kek=kek_b64, enable_test_clock=True, test_clock_offset_file=path, http_port=0
    )
    with pytest.raises(SystemExit) as stopped:
        run(bare_declaration("unit"), lambda: settings)
    assert stopped.value.code == 2
    assert "untrusted test clock" in capsys.readouterr().err


def test_readyz_and_metrics_say_when_the_test_clock_runs(tmp_path: Path, kek_b64: str) -> None:
    path = tmp_path / "offset"
    path.write_text("86400\n")
    path.chmod(0o600)
    assert describe_clock(SystemClock()) is False
    assert describe_clock(OffsetFileClock(path)) == {
        "offset_file": str(path),
        "offset_s": 86400.0,
    }
    for clock, value in ((SystemClock(), 0), (OffsetFileClock(path), 1)):
        app = create_app(bare_declaration("unit"), CommonSettings(kek=kek_b64), clock=clock)
        metrics = app.state.runtime.metrics
        assert metrics.registry.get_sample_value("leadtrail_test_clock", {"service": "unit"}) == (
            value
        )
