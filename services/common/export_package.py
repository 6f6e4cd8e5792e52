"""The access and portability package (R22, R23): parts, one package, JSON and CSV.

Every service that holds data about a subject builds its *part* from its own store (a plain
function, ``services/<service>/export_part.py``), and publishes it as ``privacy.export_part``
with the records encrypted under the subject's key. lead-ingest assembles the parts into one
:class:`ExportPackage` with :func:`assemble`; ``leadtrail export`` calls the same part builders
directly against the database and the same :func:`assemble`, so both give the same package.

Which service fills which section (a part naming a section it does not own is refused)::

    lead-ingest          personal_data, sources, interactions, scores, privacy_requests
    consent-ledger       purposes, consents, restrictions
    retention-scheduler  retention, holds
    crm-sync             recipients
    erasure-propagator   erasures, rectifications

Values a service can no longer decrypt (the subject's key was destroyed) are the text
``"erased"`` (:data:`ERASED`).

CSV layout (:func:`render_csv`), RFC 4180 (CRLF line ends, values with a comma, a quote, a CR
or an LF quoted), one value per row, ``section,record,field,value``:

* ``section``: a section name, or ``package`` for the package's own facts;
* ``record``: the record's index within its section, from 0;
* ``field``: the field name; nested values are flattened with dots (``contact.email``,
  ``explanation.0.points``);
* ``value``: text as is; numbers and booleans as in JSON (``42``, ``true``); null as empty.

Text that a spreadsheet would take for a formula (starting with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return) gets a leading ``'`` (:func:`spreadsheet_safe`): the values are the
person's and third parties' own words, and opening the file must not run them (CSV
injection). Numbers are written as numbers, so ``-5`` stays ``-5``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, JsonValue

from contracts import EventEnvelope
from contracts.events.privacy import (
    EXPORT_SECTIONS,
    ExportPartContentV1,
    ExportPartV1,
    ExportSection,
)
from services.common.publisher import EventPublisher

__all__ = [
    "ERASED",
    "EXPORT_REQUEST_TYPES",
    "EXPORT_SERVICES",
    "SECTION_OWNERS",
    "ExportError",
    "ExportFormat",
    "ExportPackage",
    "ExportPart",
    "Record",
    "assemble",
    "iso",
    "package_sha256",
    "render",
    "render_csv",
    "render_json",
    "send_export_part",
    "spreadsheet_safe",
]

Record = dict[str, JsonValue]
ExportFormat = Literal["json", "csv"]
ERASED = "erased"
"""What a personal value reads as once the subject's key is destroyed."""

EXPORT_REQUEST_TYPES = frozenset({"access", "portability"})

SECTION_OWNERS: dict[ExportSection, str] = {
    "personal_data": "lead-ingest",
    "sources": "lead-ingest",
    "interactions": "lead-ingest",
    "scores": "lead-ingest",
    "privacy_requests": "lead-ingest",
    "purposes": "consent-ledger",
    "consents": "consent-ledger",
    "restrictions": "consent-ledger",
    "retention": "retention-scheduler",
    "holds": "retention-scheduler",
    "recipients": "crm-sync",
    "erasures": "erasure-propagator",
    "rectifications": "erasure-propagator",
}
EXPORT_SERVICES: tuple[str, ...] = tuple(dict.fromkeys(SECTION_OWNERS.values()))
"""The services whose parts make a complete package."""

SECTION_DESCRIPTIONS: dict[ExportSection, str] = {
    "personal_data": "the contact details of each lead, corrections applied",
    "sources": "where each lead came from (web form, or third party with its attestation)",
    "interactions": "answers given on each channel during qualification",
    "scores": "scores, the criteria behind them, and reviews by a person",
    "privacy_requests": "the data-subject requests made and their status",
    "purposes": "processing purposes, their legal basis, and whether processing is allowed now",
    "consents": "consents given and withdrawn, with their proof",
    "restrictions": "restrictions of processing, objections, suppression",
    "retention": "how long each category of data is kept, and when it is due for erasure",
    "holds": "legal holds that suspend expiry and erasure",
    "recipients": "who receives the data (the tenant's CRMs), where, and their record ids",
    "erasures": "erasures of the subject's data and their confirmations",
    "rectifications": "corrections of the subject's data and their confirmations",
}


def iso(value: datetime | None) -> str | None:
    """A time as records carry it: ISO 8601 text, or None."""
    return None if value is None else value.isoformat()


class ExportError(ValueError):
    """Parts that do not fit together (a section from the wrong service, twice, unknown)."""


class ExportPart(BaseModel):
    """One service's records about a subject, per section it owns."""

    model_config = ConfigDict(frozen=True)

    service: str
    sections: dict[ExportSection, list[Record]]

    def records(self) -> dict[ExportSection, int]:
        return {name: len(rows) for name, rows in self.sections.items()}


class ExportPackage(BaseModel):
    """The answer to an access or portability request, as delivered."""

    model_config = ConfigDict(frozen=True)

    format: Literal["leadtrail-subject-export"] = "leadtrail-subject-export"
    format_version: Literal[1] = 1
    tenant_id: str
    subject_id: str
    request_id: str | None
    generated_at: AwareDatetime
    parts: list[str]
    missing_parts: list[str]
    sections: dict[ExportSection, list[Record]]
    section_descriptions: dict[ExportSection, str]

    def records(self) -> dict[ExportSection, int]:
        return {name: len(rows) for name, rows in self.sections.items()}


def assemble(
    parts: Iterable[ExportPart],
    *,
    tenant_id: str,
    subject_id: str,
    request_id: str | None,
    generated_at: datetime,
    expected: Sequence[str] = EXPORT_SERVICES,
) -> ExportPackage:
    """One package from the services' parts; every section present, in the documented order."""
    sections: dict[ExportSection, list[Record]] = {name: [] for name in EXPORT_SECTIONS}
    seen: dict[str, ExportPart] = {}
    for part in parts:
        if part.service in seen:
            raise ExportError(f"two parts from {part.service}")
        seen[part.service] = part
        for name, rows in part.sections.items():
            owner = SECTION_OWNERS.get(name)
            if owner != part.service:
                raise ExportError(f"{part.service} may not fill section {name!r} ({owner} does)")
            sections[name] = list(rows)
    return ExportPackage(
        tenant_id=tenant_id,
        subject_id=subject_id,
        request_id=request_id,
        generated_at=generated_at,
        parts=sorted(seen),
        missing_parts=sorted(set(expected) - set(seen)),
        sections=sections,
        section_descriptions={name: SECTION_DESCRIPTIONS[name] for name in EXPORT_SECTIONS},
    )


def render_json(package: ExportPackage) -> bytes:
    return package.model_dump_json(indent=2).encode()


def package_sha256(package: ExportPackage) -> str:
    return hashlib.sha256(render_json(package)).hexdigest()


def _flatten(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            yield from _flatten(f"{prefix}.{key}" if prefix else str(key), inner)
    elif isinstance(value, list) and value:
        for index, inner in enumerate(value):
            yield from _flatten(f"{prefix}.{index}", inner)
    else:
        yield prefix, value


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """``text``, with a leading ``'`` if a spreadsheet would read it as a formula."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return spreadsheet_safe(value)
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return spreadsheet_safe(json.dumps(value, ensure_ascii=False))


def render_csv(package: ExportPackage) -> str:
    """The package as ``section,record,field,value`` rows (see the module docstring)."""
    out = io.StringIO()
    # RFC 4180 line ends: the csv module then quotes every value holding a CR or an LF, so a
    # value cannot start a row of its own (with "\n" as the terminator, a bare CR was not
    # quoted, and spreadsheets break lines there).
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["section", "record", "field", "value"])
    facts = package.model_dump(mode="json", exclude={"sections", "section_descriptions"})
    for field, value in _flatten("", facts):
        writer.writerow(["package", 0, spreadsheet_safe(field), _text(value)])
    for name, rows in package.sections.items():
        for index, row in enumerate(rows):
            for field, value in _flatten("", row):
                writer.writerow([name, index, spreadsheet_safe(field), _text(value)])
    return out.getvalue()


def render(package: ExportPackage, fmt: ExportFormat) -> tuple[bytes, str]:
    """The package's bytes in ``fmt`` and their media type."""
    if fmt == "csv":
        return render_csv(package).encode(), "text/csv; charset=utf-8"
    return render_json(package), "application/json"


async def send_export_part(
    publisher: EventPublisher, cause: EventEnvelope, part: ExportPart
) -> EventEnvelope:
    """Publish a service's part of the answer to ``cause`` (a verified access or portability
    request); its id is derived from the request event and the service, so a redelivery
    republishes the same event and the assembler counts it once."""
    return await publisher.publish_caused(
        cause,
        ExportPartV1(
            request_id=cause.data["request_id"], service=part.service, records=part.records()
        ),
        what=f"export_part/{part.service}",
        pii=ExportPartContentV1(sections=part.sections),
    )
