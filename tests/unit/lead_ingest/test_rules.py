"""Scoring rules and their explanations (R6, R8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.lead_ingest.rules import ScoringRules, load_rules, score

RULES = ScoringRules.model_validate(
    {
        "version": 2,
        "threshold": 50,
        "criteria": [
            {"id": "budget_10k", "answer": "budget", "op": "gte", "value": 10000, "points": 30},
            {
                "id": "decision_maker",
                "answer": "role",
                "op": "in",
                "value": ["CEO", "owner", "CTO"],
                "points": 25,
            },
            {
                "id": "timeline_soon",
                "answer": "timeline",
                "op": "eq",
                "value": "this quarter",
                "points": 20,
            },
            {
                "id": "wants_demo",
                "answer": "message",
                "op": "contains",
                "value": "demo",
                "points": 10,
            },
            {"id": "has_website", "answer": "website", "op": "exists", "points": 5},
            {"id": "student", "answer": "role", "op": "eq", "value": "student", "points": -40},
        ],
    }
)


def test_score_explains_every_point() -> None:
    result = score(RULES, {"budget": "12,500", "role": "owner", "message": "Can I get a DEMO?"})
    assert result.score == 65
    assert result.qualified
    assert result.rules_version == 2
    assert [(m.criterion_id, m.input, m.points) for m in result.matches] == [
        ("budget_10k", "12,500", 30),
        ("decision_maker", "owner", 25),
        ("wants_demo", "Can I get a DEMO?", 10),
    ]


def test_below_threshold_is_not_qualified() -> None:
    result = score(RULES, {"budget": 9999, "timeline": "This Quarter "})
    assert result.score == 20
    assert not result.qualified


def test_negative_points_and_missing_answers() -> None:
    assert score(RULES, {"role": "Student"}).score == -40
    assert score(RULES, {}).score == 0
    assert score(RULES, {}).matches == []


def test_numbers_never_match_non_numbers() -> None:
    assert score(RULES, {"budget": "lots"}).score == 0
    assert score(RULES, {"budget": True}).score == 0


def test_exists_ignores_empty_answers() -> None:
    assert score(RULES, {"website": ""}).score == 0
    assert score(RULES, {"website": "https://x.example"}).score == 5


@pytest.mark.parametrize(
    "criterion",
    [
        {"id": "a", "answer": "x", "op": "gte", "value": "ten", "points": 1},
        {"id": "a", "answer": "x", "op": "in", "value": [], "points": 1},
        {"id": "a", "answer": "x", "op": "exists", "value": 1, "points": 1},
        {"id": "a", "answer": "x", "op": "eq", "points": 1},
        {"id": "A b", "answer": "x", "op": "eq", "value": 1, "points": 1},
        {"id": "a", "answer": "x", "op": "between", "value": 1, "points": 1},
    ],
)
def test_bad_rules_are_rejected(criterion: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ScoringRules.model_validate({"threshold": 1, "criteria": [criterion]})


def test_duplicate_ids_are_rejected() -> None:
    same = {"id": "a", "answer": "x", "op": "exists", "points": 1}
    with pytest.raises(ValidationError, match="duplicate"):
        ScoringRules.model_validate({"threshold": 1, "criteria": [same, same]})


def test_rules_load_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "version: 1\nthreshold: 10\ncriteria:\n"
        "  - {id: budget, answer: budget, op: gt, value: 0, points: 10}\n"
    )
    assert load_rules(path).criteria[0].id == "budget"
    path.write_text("threshold: [\n")
    with pytest.raises(ValueError, match=r"rules\.yaml"):
        load_rules(path)
