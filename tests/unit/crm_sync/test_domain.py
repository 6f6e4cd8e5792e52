"""crm-sync's read model as a pure fold (services/crm_sync/domain.py): an erasure handled by
its own consumer group before lead events published earlier leaves the same documents as the
log order a replay folds in, and nothing personal survives it (R18, R20)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.crm_sync.domain import CrmReadModel, lead_ref, subject_ref
from tests.unit.folding import erasure_orders, fold, lead_steps


@settings(max_examples=60, deadline=None)
@given(steps=lead_steps, erased_after=st.integers(0, 8), batch=st.integers(1, 4))
async def test_an_erasure_folded_early_ends_as_one_folded_in_log_order(
    steps: list[tuple[str, bool]], erased_after: int, batch: int
) -> None:
    log_order, erasure_first, seen, _ = erasure_orders(steps, erased_after)
    replayed = await fold(CrmReadModel(), log_order, batch)
    live = await fold(CrmReadModel(), erasure_first, batch)

    assert live == replayed
    subject = replayed[subject_ref("acme", "sub-1")]
    assert subject is not None
    assert subject["erased"] is True
    assert sorted(subject["lead_ids"]) == sorted(seen)
    for lead_id in seen:
        document = replayed[lead_ref(lead_id)]
        assert document is not None
        assert document["contact"] is None, "nothing personal survives the erasure"
        assert document["interactions"] == []
