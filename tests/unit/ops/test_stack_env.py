"""``make up`` never hands the test clock's settings from the operator's shell to a service."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import ops.stack
from ops.stack import ServiceDef, ServiceProcess, stack_up


def test_stack_up_drops_the_test_clock_settings_of_the_operators_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADTRAIL_TEST_CLOCK_OFFSET_FILE", str(tmp_path / "offset"))
    monkeypatch.setenv("LEADTRAIL_ENABLE_TEST_CLOCK", "true")
    monkeypatch.setenv("LEADTRAIL_LOG_LEVEL", "debug")  # other settings still pass through
    seen: list[dict[str, str]] = []

    def start_service(
        service: ServiceDef, run_root: Path, env: dict[str, str], timeout: float
    ) -> ServiceProcess:
        seen.append(env)
        return ServiceProcess(service.name, service.module, service.label, "http://x", 1, "log")

    async def no_topics(*args: Any) -> None:
        return None

    monkeypatch.setattr(ops.stack, "start_kafka", lambda root: SimpleNamespace(bootstrap="k:1"))
    monkeypatch.setattr(ops.stack, "start_mongo", lambda root: SimpleNamespace(url="mongodb://m"))
    monkeypatch.setattr(ops.stack, "ensure_topics", no_topics)
    monkeypatch.setattr(ops.stack, "stack_down", lambda *a, **k: None)
    monkeypatch.setattr(ops.stack, "_start_service", start_service)
    stack_up(tmp_path)
    assert len(seen) == len(ops.stack.SERVICES)
    for env in seen:
        assert "LEADTRAIL_TEST_CLOCK_OFFSET_FILE" not in env
        assert "LEADTRAIL_ENABLE_TEST_CLOCK" not in env
        assert env["LEADTRAIL_LOG_LEVEL"] == "debug"
