"""lead-ingest's read model as a pure fold (services/lead_ingest/domain.py).

Live, an erasure arrives through its own consumer group and may be folded before lead events
published earlier; a replay folds in log order. The documents must end the same either way
(R18, R19): that is the property tested here, over any sequence of lead events and any point
at which the erasure is handled.
"""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.pipeline import DocRef
from services.common.store import Document
from services.lead_ingest.domain import LeadReadModel, lead_ref, subject_ref
from tests.unit.folding import T0, erasure_orders, fold, interaction, lead_steps


@settings(max_examples=60, deadline=None)
@given(
    steps=lead_steps, erased_after=st.integers(min_value=0, max_value=8), batch=st.integers(1, 4)
)
async def test_an_erasure_folded_early_ends_as_one_folded_in_log_order(
    steps: list[tuple[str, bool]], erased_after: int, batch: int
) -> None:
    log_order, erasure_first, seen, erased = erasure_orders(steps, erased_after)
    replayed = await fold(LeadReadModel(), log_order, batch)
    live = await fold(LeadReadModel(), erasure_first, batch)

    assert live == replayed
    subject = replayed[subject_ref("acme", "sub-1")]
    assert subject is not None
    assert subject["erased_at"] == erased.envelope.occurred_at
    for lead_id in seen:
        document = replayed[lead_ref(lead_id)]
        assert document is not None
        assert document["contact"] is None, "nothing personal survives the erasure"
        assert all(item["answers"] is None for item in document.get("interactions", []))


async def test_the_fold_does_not_change_what_it_is_given() -> None:
    model = LeadReadModel()
    event = interaction("lead_1", 1)
    before: dict[DocRef, Document | None] = {
        subject_ref("acme", "sub-1"): {"lead_ids": ["lead_1"], "erased_at": T0},
        lead_ref("lead_1"): {"tenant_id": "acme", "interactions": [{"answers": {"x": 1}}]},
    }
    kept = copy.deepcopy(before)
    changed = model.apply(before, event)
    assert before == kept
    document = changed[lead_ref("lead_1")]
    assert document is not None
    assert len(document["interactions"]) == 2
