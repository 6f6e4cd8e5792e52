"""Upcasters of the catalogue: an old event reads as the latest version, with exactly the facts
its producer recorded and documented defaults for the rest."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from contracts import REGISTRY, EventEnvelope
from contracts.catalog import (
    upcast_lead_score_reviewed_v1_v2,
    upcast_lead_scored_v1_v2,
    upcast_privacy_request_verified_v1_v2,
)
from contracts.events.lead import (
    CriterionRule,
    LeadScoredV1,
    LeadScoredV2,
    LeadScoreReviewedV1,
    LeadScoreReviewedV2,
    ScoreInputsV1,
    ScoreReviewV2,
)
from contracts.events.privacy import PrivacyRequestAttestationV2, PrivacyRequestVerifiedV2
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


# -- lead.score_reviewed v2, privacy.request.verified v2: the operator is personal data -------


def test_lead_score_reviewed_v1_reads_as_v2_with_its_clear_reviewer_as_legacy() -> None:
    stored = EventEnvelope.model_validate(_example("lead.score_reviewed", 1)["event"])
    decoded = REGISTRY.decode(stored)
    assert decoded.original_version == 1
    assert decoded.envelope.version == 2 == REGISTRY.latest("lead.score_reviewed").version
    assert isinstance(decoded.data, LeadScoreReviewedV2)
    assert decoded.data.legacy_reviewer == "sales-ops@acme.example"
    assert decoded.data.reviewer_hash is None, "v1 recorded no hash, none is made up"
    v1 = LeadScoreReviewedV1.model_validate(stored.data)
    assert decoded.data.model_dump(exclude={"legacy_reviewer", "reviewer_hash"}) == v1.model_dump(
        exclude={"reviewer"}
    )
    assert decoded.envelope.pii == stored.pii
    plain = _example("lead.score_reviewed", 1)["pii_plaintext"]
    upcast = REGISTRY.upcast_pii("lead.score_reviewed", 1, plain)
    assert ScoreReviewV2.model_validate(upcast) == ScoreReviewV2(reason=plain["reason"])


def test_lead_score_reviewed_v2_keeps_the_reviewer_out_of_the_clear_part() -> None:
    example = _example("lead.score_reviewed", 2)
    stored = EventEnvelope.model_validate(example["event"])
    decoded = REGISTRY.decode(stored)
    assert decoded.envelope == stored
    assert "reviewer" not in stored.data
    assert "@" not in json.dumps(stored.data)
    assert ScoreReviewV2.model_validate(example["pii_plaintext"]).reviewer == (
        "sales-ops@acme.example"
    )
    with pytest.raises(ValidationError, match="reviewer"):
        LeadScoreReviewedV2.model_validate({**stored.data, "reviewer": "ops@acme.example"})
    with pytest.raises(ValidationError, match="reviewer_hash"):
        LeadScoreReviewedV2.model_validate({**stored.data, "reviewer_hash": "ops@acme.example"})


def test_privacy_request_verified_v1_reads_as_v2_with_its_clear_attester_as_legacy() -> None:
    stored = EventEnvelope.model_validate(_example("privacy.request.verified", 1)["event"])
    decoded = REGISTRY.decode(stored)
    assert decoded.envelope.version == 2 == REGISTRY.latest("privacy.request.verified").version
    assert isinstance(decoded.data, PrivacyRequestVerifiedV2)
    assert decoded.data.legacy_attested_by == "privacy@acme.example"
    assert decoded.data.attested_by_hash is None
    token = {"request_id": "pr_1", "request_type": "access", "method": "token"}
    assert upcast_privacy_request_verified_v1_v2(token) == {
        **token,
        "attested_by_hash": None,
        "legacy_attested_by": None,
    }


def test_privacy_request_verified_v2_keeps_the_attester_out_of_the_clear_part() -> None:
    example = _example("privacy.request.verified", 2)
    stored = EventEnvelope.model_validate(example["event"])
    assert REGISTRY.decode(stored).envelope == stored
    assert "@" not in json.dumps(stored.data)
    assert PrivacyRequestAttestationV2.model_validate(example["pii_plaintext"]).attested_by == (
        "privacy@acme.example"
    )
    with pytest.raises(ValidationError, match="attested_by"):
        PrivacyRequestVerifiedV2.model_validate({**stored.data, "attested_by": "dpo@acme"})


def test_producers_publish_the_operator_encrypted() -> None:
    assert REGISTRY.definition_for(LeadScoreReviewedV2).version == 2
    assert REGISTRY.latest("lead.score_reviewed").pii is ScoreReviewV2
    assert REGISTRY.definition_for(PrivacyRequestVerifiedV2).version == 2
    assert REGISTRY.latest("privacy.request.verified").pii is PrivacyRequestAttestationV2


def test_the_score_review_upcaster_leaves_its_input_alone() -> None:
    data = _example("lead.score_reviewed", 1)["event"]["data"]
    before = copy.deepcopy(data)
    assert "reviewer" not in upcast_lead_score_reviewed_v1_v2(data)
    assert data == before
