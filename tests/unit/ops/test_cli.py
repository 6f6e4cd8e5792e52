"""The operator CLI's errors: clear messages, non-zero exits, nothing half-done."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ops.cli import app

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LEADTRAIL_CONFIG_DIR", str(tmp_path))
    for name in ("LEADTRAIL_KAFKA_BOOTSTRAP", "LEADTRAIL_KEK"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_tenants_add_prints_the_key_once_and_stores_only_its_hash(config: Path) -> None:
    result = runner.invoke(app, ["tenants", "add", "Acme Srl", "--region", "IT"])
    assert result.exit_code == 0, result.output
    key = next(line.split(": ")[1] for line in result.stdout.splitlines() if "api key" in line)
    assert key.startswith("lt_acme-srl_")
    stored = (config / "tenants.json").read_text()
    assert key not in stored
    again = runner.invoke(app, ["tenants", "add", "Acme Srl"])
    assert again.exit_code == 1
    assert "already exists" in again.stderr
    listed = runner.invoke(app, ["tenants", "list"])
    assert "acme-srl" in listed.stdout
    assert key not in listed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tenants", "add", "X", "--region", "italy"], "--region"),
        (["tenants", "rotate-key", "nobody"], "no tenant"),
        (
            [
                "retention",
                "set",
                "--tenant",
                "nobody",
                "--category",
                "lead_data",
                "--days",
                "1",
                "--by",
                "me",
            ],
            "no tenant",
        ),
        (["holds", "place", "--tenant", "nobody", "--reason", "r", "--by", "me"], "no tenant"),
        (["holds", "release", "hold_1", "--tenant", "nobody", "--by", "me"], "no tenant"),
        (["holds", "list", "--tenant", "nobody"], "no tenant"),
    ],
)
def test_bad_input_is_a_clear_error(config: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert message in result.stderr


def test_a_longer_retention_is_refused_before_anything_is_published(config: Path) -> None:
    runner.invoke(app, ["tenants", "add", "Acme", "--id", "acme"])
    result = runner.invoke(
        app,
        [
            "retention",
            "set",
            "--tenant",
            "acme",
            "--category",
            "lead_data",
            "--days",
            "800",
            "--by",
            "dpo",
        ],
    )
    assert result.exit_code == 1
    assert "only shorten retention (R16)" in result.stderr
    unknown = runner.invoke(
        app,
        [
            "retention",
            "set",
            "--tenant",
            "acme",
            "--category",
            "horoscopes",
            "--days",
            "8",
            "--by",
            "dpo",
        ],
    )
    assert "unknown data category" in unknown.stderr


def test_without_a_stack_publishing_commands_say_so(config: Path) -> None:
    runner.invoke(app, ["tenants", "add", "Acme", "--id", "acme"])
    result = runner.invoke(
        app,
        [
            "retention",
            "set",
            "--tenant",
            "acme",
            "--category",
            "lead_data",
            "--days",
            "30",
            "--by",
            "dpo",
        ],
    )
    assert result.exit_code == 1
    assert "make up" in result.stderr
    for holds in (["list"], ["release", "hold_1", "--by", "legal"]):
        result = runner.invoke(app, ["holds", *holds, "--tenant", "acme"])
        assert result.exit_code == 1
        assert "make up" in result.stderr


def every_command() -> list[list[str]]:
    """Every ``leadtrail`` command, as its words: the top-level ones and each group's."""
    commands = [[str(info.name)] for info in app.registered_commands]
    for group in app.registered_groups:
        assert group.typer_instance is not None
        commands += [
            [str(group.name), str(info.name)] for info in group.typer_instance.registered_commands
        ]
    return commands


def test_every_command_has_help_with_an_example() -> None:
    commands = every_command()
    assert ["replay"] in commands
    assert ["holds", "release"] in commands
    assert len(commands) >= 15
    for group in app.registered_groups:
        assert runner.invoke(app, [str(group.name), "--help"]).exit_code == 0
    for command in commands:
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, command
        assert "Example" in result.stdout, command
