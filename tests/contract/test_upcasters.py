"""Upcasters of the catalogue: an old event reads as the latest version, with exactly the facts
its producer recorded and documented defaults for the rest."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from contracts import REGISTRY, EventEnvelope
from contracts.catalog import upcast_lead_scored_v1_v2
from contracts.events.lead import CriterionRule, LeadScoredV1, LeadScoredV2, ScoreInputsV1
from contracts.schemagen import EXAMPLES_DIR


def _example(event_type: str, version: int) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES_DIR / event_type / f"{version}.json").read_text())
    return loaded


def test_lead_scored_v1_reads_as_v2_with_no_rule_recorded() -> None:
    stored = EventEnvelope.model_validate(_example("lead.scored", 1)["event"])
    decoded = REGISTRY.decode(stored)
    assert decoded.original_version == 1
    assert decoded.envelope.version == 2 == REGISTRY.latest("lead.scored").version
    assert isinstance(decoded.data, LeadScoredV2)
    v1 = LeadScoredV1.model_validate(stored.data)
    assert decoded.data.model_dump(exclude={"matched"}) == v1.model_dump(exclude={"matched"})
    assert [(m.criterion_id, m.answer, m.points, m.rule) for m in decoded.data.matched] == [
        (m.criterion_id, m.answer, m.points, None) for m in v1.matched
    ]
    # Routing, audit facts and the encrypted personal part are the stored event's own.
    assert decoded.envelope.model_dump(exclude={"version", "data"}) == stored.model_dump(
        exclude={"version", "data"}
    )


def test_v1_data_is_not_v2_without_the_upcaster() -> None:
    """``rule`` has no default: a v1 event read without its upcaster fails loudly."""
    data = _example("lead.scored", 1)["event"]["data"]
    with pytest.raises(ValidationError, match="rule"):
        LeadScoredV2.model_validate(data)
    LeadScoredV2.model_validate(upcast_lead_scored_v1_v2(data))


def test_the_upcaster_leaves_its_input_alone_and_handles_no_matches() -> None:
    data = _example("lead.scored", 1)["event"]["data"]
    before = copy.deepcopy(data)
    upcast_lead_scored_v1_v2(data)
    assert data == before
    empty = {**data, "matched": [], "score": 0, "qualified": False}
    assert upcast_lead_scored_v1_v2(empty) == {**empty, "matched": []}


def test_lead_scored_v2_passes_through_unchanged() -> None:
    stored = EventEnvelope.model_validate(_example("lead.scored", 2)["event"])
    decoded = REGISTRY.decode(stored)
    assert decoded.original_version == 2
    assert decoded.envelope == stored
    assert isinstance(decoded.data, LeadScoredV2)
    assert decoded.data.matched[0].rule == CriterionRule(
        op="gte", value=10000, description="Budget of at least 10 000 EUR"
    )


def test_the_personal_part_of_lead_scored_did_not_change() -> None:
    """No pii upcaster: both versions encrypt the same ``ScoreInputsV1``."""
    assert REGISTRY.get("lead.scored", 1).pii is REGISTRY.get("lead.scored", 2).pii
    assert REGISTRY.get("lead.scored", 2).pii is ScoreInputsV1
    plain = _example("lead.scored", 1)["pii_plaintext"]
    assert REGISTRY.upcast_pii("lead.scored", 1, plain) == plain


def test_producers_publish_lead_scored_v2() -> None:
    assert REGISTRY.definition_for(LeadScoredV2).version == 2
    assert REGISTRY.latest("lead.scored").data is LeadScoredV2
