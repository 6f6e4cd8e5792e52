"""``leadtrail replay``'s input errors: one ``error:`` line, exit 2, before touching anything;
and the pieces of the replay that need no infrastructure."""

from __future__ import annotations

import importlib
import importlib.util
from datetime import UTC, datetime
from typing import Any

import pytest
from typer.testing import CliRunner

from contracts import REGISTRY
from ops.cli import app
from ops.replay import SERVICES, diff_documents
from ops.replay_source import ReplayInputError, parse_start, parse_time
from services import SERVICE_PACKAGES

runner = CliRunner()
CONNECTION = ["--bootstrap", "127.0.0.1:1", "--mongo-url", "mongodb://127.0.0.1:1/"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--service", "billing"], "unknown service 'billing': choose one of consent-ledger"),
        (["--service", "crm-sync", "--to", "yesterday"], "cannot read 'yesterday' as a time"),
        (["--service", "crm-sync", "--from", "29/11/2026"], "cannot read '29/11/2026'"),
        (
            ["--service", "crm-sync", "--from", "2026-11-02", "--to", "2026-11-01"],
            "is before --from",
        ),
        (["--service", "crm-sync", "--to", "2026-11-01", "--verify"], "cannot be compared"),
        (["--service", "crm-sync", "--to", "2026-11-01", "--swap"], "cannot be compared"),
        (["--service", "crm-sync", "--into", "no-dashes"], "use 1 to 32 letters or digits"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["replay", *args, *CONNECTION])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_no_broker_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADTRAIL_KAFKA_BOOTSTRAP", raising=False)
    result = runner.invoke(app, ["replay", "--service", "crm-sync"])
    assert result.exit_code == 2
    assert "error: no broker" in result.stderr


def test_help_has_examples() -> None:
    result = runner.invoke(app, ["replay", "--help"])
    assert result.exit_code == 0
    assert "leadtrail replay --service consent-ledger --verify" in result.stdout
    assert "--into" in result.stdout


def test_times_and_offsets() -> None:
    assert parse_time("2026-11-29T08:00:00Z") == datetime(2026, 11, 29, 8, tzinfo=UTC)
    assert parse_time("2026-11-29 08:00") == datetime(2026, 11, 29, 8, tzinfo=UTC)
    assert parse_start("120") == 120
    assert parse_start(None) is None
    with pytest.raises(ReplayInputError):
        parse_start("-3")


def test_replay_reads_what_the_services_subscribe_to() -> None:
    """Replay reads each service's own declaration (the table it registers live), every
    subscription handles some type the registry routes to its topics, and read models and
    operational state never overlap."""
    assert [spec.package for spec in SERVICES.values()] == list(SERVICE_PACKAGES)
    for name, spec in SERVICES.items():
        declared = importlib.import_module(f"{spec.package}.declaration").DECLARATION
        assert spec is declared
        assert spec.name == name
        for subscription in spec.subscriptions:
            assert subscription.wanted(REGISTRY), (name, subscription.group_id)
            if subscription.event_types is not None:
                assert subscription.event_types <= subscription.wanted(REGISTRY), (
                    f"{subscription.group_id} names types no topic of it carries"
                )
        operational = {collection.name for collection in spec.operational}
        assert not set(spec.read_models) & operational
        assert "data_keys" in operational
    assert SERVICES["crm-sync"].wanted(REGISTRY, "privacy-events") == {"privacy.request.verified"}


def test_differences_name_collection_id_field_and_both_values() -> None:
    live: list[dict[str, Any]] = [
        {"_id": "a", "x": 1, "nested": {"y": [1, 2]}, "_applied": ["e1", "e2"]},
        {"_id": "b", "x": 1},
    ]
    rebuilt: list[dict[str, Any]] = [
        {"_id": "a", "x": 2, "nested": {"y": [1, 3]}, "_applied": ["e2"]},
        {"_id": "c"},
    ]
    found = [str(d) for d in diff_documents("leads", live, rebuilt)]
    assert found == [
        "leads  a  nested.y.1: live=2  rebuilt=3",
        "leads  a  x: live=1  rebuilt=2",
        "leads  b  (document): live='present'  rebuilt=<missing>",
        "leads  c  (document): live=<missing>  rebuilt='present'",
    ]


def test_without_the_replay_extra_replay_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "mongomock" else real_find_spec(name, *a),
    )
    result = runner.invoke(app, ["replay", "--service", "crm-sync", *CONNECTION])
    assert result.exit_code == 2
    assert "pip install 'leadtrail[replay]'" in result.stderr
