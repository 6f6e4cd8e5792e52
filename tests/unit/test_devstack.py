"""The development stack (``devstack``, behind ``make up``): what it hands the services, its
command line, and that it stays out of the product's packages."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from devstack import stack
from devstack.cli import app
from devstack.paths import default_run_root, repo_root
from devstack.stack import ServiceDef, ServiceProcess, stack_up


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
        return ServiceProcess(service.name, service.module, "http://x", 1, "log")

    async def no_topics(*args: Any) -> None:
        return None

    monkeypatch.setattr(stack, "start_kafka", lambda root: SimpleNamespace(bootstrap="k:1"))
    monkeypatch.setattr(stack, "start_mongo", lambda root: SimpleNamespace(url="mongodb://m"))
    monkeypatch.setattr(stack, "ensure_topics", no_topics)
    monkeypatch.setattr(stack, "stack_down", lambda *a, **k: None)
    monkeypatch.setattr(stack, "_start_service", start_service)
    stack_up(tmp_path)
    assert len(seen) == len(stack.PROCESSES)  # the five services and the console
    assert set(seen[-1]) >= {f"LEADTRAIL_{n}_URL" for n in ("LEAD_INGEST", "CRM_SYNC")}
    for env in seen:
        assert "LEADTRAIL_TEST_CLOCK_OFFSET_FILE" not in env
        assert "LEADTRAIL_ENABLE_TEST_CLOCK" not in env
        assert env["LEADTRAIL_LOG_LEVEL"] == "debug"


def test_the_devstack_cli_has_the_stack_and_the_servers_commands() -> None:
    runner = CliRunner()
    for command in (["up"], ["down"], ["status"], ["servers"], ["servers", "kafka"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
    assert "make up" in runner.invoke(app, ["up", "--help"]).stdout


def test_the_product_packages_leave_the_development_stack_out() -> None:
    """What the wheel (and so the image) installs: ``devstack`` and ``tests`` are not in it."""
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    included = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert not [p for p in included if fnmatch("devstack", p) or fnmatch("tests", p)]
    assert "mongomock" not in " ".join(pyproject["project"]["dependencies"])
    assert any("mongomock" in d for d in pyproject["project"]["optional-dependencies"]["replay"])


def test_the_stack_finds_the_checkout_it_runs_from() -> None:
    """The jars' Maven files and ``.run/`` are found from ``devstack/``'s own location."""
    assert (repo_root() / "pyproject.toml").is_file()
    assert (repo_root() / "deploy" / "local" / "kafka" / "pom.xml").is_file()
    assert default_run_root() == repo_root() / ".run"
