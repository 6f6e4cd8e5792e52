"""Per-tenant qualification and scoring rules, and explained scores (R6, R8).

Rules are a small declarative document (YAML or JSON) per tenant::

    version: 3                 # bump on every change; scores record which rules made them
    threshold: 60              # a lead with score >= threshold is qualified
    criteria:
      - id: budget_10k
        description: Budget of at least 10 000 EUR
        answer: budget         # key of an interaction answer
        op: gte                # eq, ne, gte, gt, lte, lt, in, contains, exists
        value: 10000
        points: 30

A score is the sum of the points of the criteria that match the lead's latest answers; each
match records the criterion, the input it saw and its points, so every score can be explained
and reviewed by a person.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Answer",
    "Criterion",
    "Match",
    "ScoreResult",
    "ScoringRules",
    "load_rules",
    "score",
]

Answer = str | int | float | bool
Op = Literal["eq", "ne", "gte", "gt", "lte", "lt", "in", "contains", "exists"]


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    description: Annotated[str, Field(max_length=300)] = ""
    answer: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    op: Op
    value: Answer | list[Answer] | None = None
    points: Annotated[int, Field(ge=-1000, le=1000)]

    @model_validator(mode="after")
    def _value_fits_op(self) -> Criterion:
        if self.op == "exists":
            if self.value is not None:
                raise ValueError(f"criterion {self.id}: 'exists' takes no value")
        elif self.op == "in":
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"criterion {self.id}: 'in' needs a non-empty list")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"criterion {self.id}: '{self.op}' needs a single value")
        if self.op in ("gte", "gt", "lte", "lt") and (
            isinstance(self.value, bool) or not isinstance(self.value, int | float)
        ):
            raise ValueError(f"criterion {self.id}: '{self.op}' compares numbers")
        return self

    def matches(self, answers: Mapping[str, Answer]) -> bool:
        if self.answer not in answers:
            return False
        return _OPERATORS[self.op](answers[self.answer], self.value)


def _number(value: Answer) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value.replace(",", "").strip())
    except ValueError:
        return None


def _same(given: Answer, expected: Answer | list[Answer] | None) -> bool:
    if isinstance(given, str) and isinstance(expected, str):
        return given.strip().casefold() == expected.strip().casefold()
    if isinstance(given, bool) or isinstance(expected, bool):
        return given is expected
    if isinstance(expected, int | float):
        return _number(given) == float(expected)
    return given == expected


def _compare(test: Callable[[float, float], bool]) -> Callable[[Answer, Expected], bool]:
    def compare(given: Answer, expected: Expected) -> bool:
        number = _number(given)
        return (
            number is not None
            and isinstance(expected, int | float)
            and test(number, float(expected))
        )

    return compare


Expected = Answer | list[Answer] | None
_OPERATORS: dict[str, Callable[[Answer, Expected], bool]] = {
    "exists": lambda given, _: given != "",
    "eq": _same,
    "ne": lambda given, expected: not _same(given, expected),
    "in": lambda given, expected: (
        isinstance(expected, list) and any(_same(given, option) for option in expected)
    ),
    "contains": lambda given, expected: (
        isinstance(given, str) and str(expected).casefold() in given.casefold()
    ),
    "gte": _compare(lambda a, b: a >= b),
    "gt": _compare(lambda a, b: a > b),
    "lte": _compare(lambda a, b: a <= b),
    "lt": _compare(lambda a, b: a < b),
}


class ScoringRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[int, Field(ge=1)] = 1
    threshold: Annotated[int, Field(ge=-100_000, le=100_000)]
    criteria: Annotated[list[Criterion], Field(max_length=200)]

    @model_validator(mode="after")
    def _unique_ids(self) -> ScoringRules:
        ids = [criterion.id for criterion in self.criteria]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate criterion ids: {', '.join(duplicates)}")
        return self


class Match(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    criterion_id: str
    answer: str
    input: Answer
    points: int


class ScoreResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    score: int
    threshold: int
    qualified: bool
    rules_version: int
    matches: list[Match]


def score(rules: ScoringRules, answers: Mapping[str, Answer]) -> ScoreResult:
    """Score ``answers`` (the lead's latest answer per key) and explain every point."""
    matches = [
        Match(
            criterion_id=criterion.id,
            answer=criterion.answer,
            input=answers[criterion.answer],
            points=criterion.points,
        )
        for criterion in rules.criteria
        if criterion.matches(answers)
    ]
    total = sum(match.points for match in matches)
    return ScoreResult(
        score=total,
        threshold=rules.threshold,
        qualified=total >= rules.threshold,
        rules_version=rules.version,
        matches=matches,
    )


def load_rules(path: Path) -> ScoringRules:
    """Rules from a YAML or JSON file (JSON is YAML); raises with the file name on errors."""
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML/JSON: {error}") from None
    try:
        return ScoringRules.model_validate(document)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
