"""Published contracts never change by accident, and every example is a valid event.

After a deliberate change (a *new* version), regenerate with ``make contracts``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from contracts import ALL_TOPICS, REGISTRY, EventEnvelope
from contracts.dead_letter import DeadLetterV1
from contracts.registry import EventDefinition
from contracts.schemagen import EXAMPLES_DIR, SCHEMA_DIR, render_schemas, schema_filename

DEFINITIONS = list(REGISTRY.definitions())


def _examples(definition: EventDefinition) -> list[Path]:
    folder = EXAMPLES_DIR / definition.type
    return sorted(folder.glob(f"{definition.version}.json")) + sorted(
        folder.glob(f"{definition.version}-*.json")
    )


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def test_checked_in_schema_files_equal_the_code() -> None:
    expected = render_schemas(REGISTRY)
    on_disk = {path.name: path.read_text() for path in SCHEMA_DIR.glob("*.schema.json")}
    assert sorted(on_disk) == sorted(expected), "schema files and registered versions differ"
    changed = [name for name, text in expected.items() if on_disk[name] != text]
    assert not changed, f"published schemas changed: {changed}; add a new version instead"


@pytest.mark.parametrize("definition", DEFINITIONS, ids=lambda d: f"{d.type}.v{d.version}")
def test_every_version_has_a_schema_and_an_example(definition: EventDefinition) -> None:
    assert (SCHEMA_DIR / schema_filename(definition)).is_file()
    assert _examples(definition), f"no example under {EXAMPLES_DIR / definition.type}"


@pytest.mark.parametrize("definition", DEFINITIONS, ids=lambda d: f"{d.type}.v{d.version}")
def test_examples_validate_against_schema_and_models(definition: EventDefinition) -> None:
    schema = _load(SCHEMA_DIR / schema_filename(definition))
    validator = jsonschema.Draft202012Validator(schema)
    for path in _examples(definition):
        example = _load(path)
        errors = sorted(validator.iter_errors(example["event"]), key=str)
        assert not errors, f"{path.name}: {errors[0].message}"
        envelope = EventEnvelope.model_validate(example["event"])
        REGISTRY.decode(envelope)
        if definition.pii is not None:
            jsonschema.validate(example["pii_plaintext"], schema["x-pii-plaintext"])
            definition.pii.model_validate(example["pii_plaintext"])


def test_schema_rejects_an_event_with_an_unknown_field() -> None:
    definition = DEFINITIONS[0]
    schema = _load(SCHEMA_DIR / schema_filename(definition))
    event = _load(_examples(definition)[0])["event"]
    event["data"]["favourite_colour"] = "blue"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, schema)


def test_dead_letter_example_is_valid() -> None:
    schema = _load(SCHEMA_DIR / "dead_letter.v1.schema.json")
    record = _load(EXAMPLES_DIR / "dead_letter" / "1.json")["record"]
    jsonschema.validate(record, schema)
    DeadLetterV1.model_validate(record)


def test_every_event_lives_on_a_declared_topic() -> None:
    names = {topic.name for topic in ALL_TOPICS}
    for definition in DEFINITIONS:
        assert definition.topic in names, definition.type
