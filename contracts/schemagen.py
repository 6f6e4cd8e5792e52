"""JSON Schema files for every registered event version.

``contracts/schemas/<type>.v<N>.schema.json`` describes one whole envelope of that version: the
envelope fields, ``type`` and ``version`` pinned, ``data`` as the version's model, and, under
``x-pii-plaintext``, the shape of the personal data once decrypted. The files are generated
(``make contracts``) and checked in; the contract test fails when code and files
disagree, so a published version can't change by accident.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import create_model

from contracts.dead_letter import DeadLetterV1
from contracts.envelope import EventEnvelope
from contracts.registry import EventDefinition, EventRegistry

__all__ = ["EXAMPLES_DIR", "SCHEMA_DIR", "event_schema", "render_schemas", "schema_filename"]

PACKAGE_DIR = Path(__file__).parent
SCHEMA_DIR = PACKAGE_DIR / "schemas"
EXAMPLES_DIR = PACKAGE_DIR / "examples"


def schema_filename(definition: EventDefinition) -> str:
    return f"{definition.type}.v{definition.version}.schema.json"


def event_schema(definition: EventDefinition) -> dict[str, Any]:
    model_name = "".join(part.title() for part in definition.type.replace("_", ".").split("."))
    envelope_model = create_model(
        f"{model_name}V{definition.version}Envelope",
        __base__=EventEnvelope,
        type=(Literal[definition.type], ...),  # type: ignore[arg-type]
        version=(Literal[definition.version], ...),  # type: ignore[arg-type]
        data=(definition.data, ...),
    )
    schema = envelope_model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:leadtrail:event:{definition.type}:v{definition.version}"
    schema["title"] = f"{definition.type} v{definition.version}"
    schema["description"] = definition.description
    schema["x-topic"] = definition.topic
    schema["x-producers"] = list(definition.producers)
    schema["x-consumers"] = list(definition.consumers)
    if definition.pii is not None:
        schema["x-pii-plaintext"] = definition.pii.model_json_schema(mode="validation")
    return schema


def dead_letter_schema() -> dict[str, Any]:
    schema = DeadLetterV1.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "urn:leadtrail:dead-letter:v1"
    schema["title"] = "dead letter v1"
    return schema


def _dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def render_schemas(registry: EventRegistry) -> dict[str, str]:
    """File name -> file text, for every registered version and the dead-letter record."""
    files = {schema_filename(d): _dump(event_schema(d)) for d in registry.definitions()}
    files["dead_letter.v1.schema.json"] = _dump(dead_letter_schema())
    return files


def write_schemas(registry: EventRegistry, directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas(registry).items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written
