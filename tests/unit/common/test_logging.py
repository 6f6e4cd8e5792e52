"""Every log line is one JSON object, whoever writes it (R31 observability, issue 16 item 7)."""

from __future__ import annotations

import json
import logging
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from services.common.logging import configure_logging, get_logger
from services.common.runner import run
from services.common.settings import CommonSettings
from tests.helpers import bare_declaration


@pytest.fixture
def json_logging() -> Iterator[None]:
    """Restores what configure_logging changes (it is called in each test, where capsys's
    stream is the one that test reads)."""
    hook = sys.excepthook
    config = structlog.get_config()
    handlers = list(logging.getLogger().handlers)
    yield
    sys.excepthook = hook
    logging.captureWarnings(False)
    structlog.configure(**config)  # the next tests must not write to this test's capsys
    for handler in set(logging.getLogger().handlers) - set(handlers):
        logging.getLogger().removeHandler(handler)


def lines(text: str) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert parsed, "nothing was logged"
    return parsed


def test_a_library_traceback_is_one_json_line(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("consent-ledger", "info", "json")
    try:
        b"x".decode("ascii") + "é".encode("ascii").decode()
    except UnicodeError as error:
        # what uvicorn writes for an exception in the ASGI application (log_config=None)
        logging.getLogger("uvicorn.error").error("Exception in ASGI application\n", exc_info=error)
    [line] = lines(capsys.readouterr().err)
    assert line["service"] == "consent-ledger"
    assert line["level"] == "error"
    assert line["logger"] == "uvicorn.error"
    assert line["exception"][0]["exc_type"] == "UnicodeEncodeError"
    assert "locals" not in line["exception"][0]["frames"][0], "locals may hold personal data"


def test_warnings_and_uncaught_exceptions_are_json_lines(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("consent-ledger", "info", "json")
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    try:
        raise RuntimeError("boom\\nsecond line")
    except RuntimeError as error:
        sys.excepthook(RuntimeError, error, error.__traceback__)
    get_logger("x").info("structlog's own line")
    found = lines(capsys.readouterr().err)
    assert [line.get("level") for line in found] == ["warning", "critical", "info"]
    assert found[1]["exception"][0]["exc_value"] == "boom\\nsecond line"


def test_an_invalid_configuration_is_one_json_line_without_the_secret(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "bm90IGEgMzItYnl0ZSBrZXkgYnV0IHNlY3JldA=="

    def load() -> CommonSettings:
        return CommonSettings.model_validate({"kek": secret})

    with pytest.raises(SystemExit) as exited:
        run(bare_declaration("lead-ingest"), load)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert secret not in err
    [line] = lines(err)
    assert line["event"] == "invalid configuration"
    assert line["service"] == "lead-ingest"
    assert line["errors"][0]["setting"] == "kek"
