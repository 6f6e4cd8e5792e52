"""The shared consent decision (R9-R14, R28), with property tests for "replay equals live"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.consent import (
    ConsentFact,
    ConsentState,
    LegalBasis,
    apply,
    decide,
    fold,
    has_remaining_basis,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BASES: dict[str, LegalBasis] = {
    "marketing_email": "consent",
    "crm_sync": "consent",
    "profiling": "legitimate_interest",
    "billing": "contract",
}


def fact(n: int, kind: str, *purposes: str) -> ConsentFact:
    return ConsentFact(f"e{n}", kind, T0 + timedelta(minutes=n), tuple(purposes))


def test_consent_allows_until_withdrawn_and_withdrawal_is_not_retroactive() -> None:
    facts = [
        fact(1, "consent.granted", "marketing_email"),
        fact(5, "consent.withdrawn", "marketing_email"),
    ]
    assert decide(fold(facts, until=T0 + timedelta(minutes=3)), "marketing_email", BASES).allowed
    now = decide(fold(facts), "marketing_email", BASES)
    assert not now.allowed
    assert now.reason == "consent withdrawn (R11)"


def test_other_bases_do_not_need_consent_but_yield_to_objection() -> None:
    state = fold([fact(1, "objection.recorded", "profiling", "billing")])
    assert not decide(state, "profiling", BASES).allowed
    assert decide(state, "billing", BASES).allowed, "a contract is not objectable"
    assert not decide(ConsentState(), "marketing_email", BASES).allowed
    assert not decide(ConsentState(), "telepathy", BASES).allowed


def test_restriction_stops_everything_until_lifted() -> None:
    placed = [fact(1, "consent.granted", "crm_sync"), fact(2, "restriction.placed")]
    assert not decide(fold(placed), "crm_sync", BASES).allowed
    assert not decide(fold(placed), "billing", BASES).allowed
    lifted = [*placed, fact(3, "restriction.lifted")]
    assert decide(fold(lifted), "crm_sync", BASES).allowed


def test_a_new_grant_answers_an_earlier_objection() -> None:
    facts = [
        fact(1, "objection.recorded", "marketing_email"),
        fact(2, "consent.granted", "marketing_email"),
    ]
    assert decide(fold(facts), "marketing_email", BASES).allowed


def test_remaining_basis_after_withdrawal_r12() -> None:
    only_consent: dict[str, LegalBasis] = {"marketing_email": "consent", "crm_sync": "consent"}
    facts = [
        fact(1, "consent.granted", "marketing_email"),
        fact(2, "consent.granted", "crm_sync"),
        fact(3, "consent.withdrawn", "marketing_email"),
    ]
    assert has_remaining_basis(fold(facts), only_consent), "crm_sync still has consent"
    facts.append(fact(4, "consent.withdrawn", "crm_sync"))
    assert not has_remaining_basis(fold(facts), only_consent)
    assert has_remaining_basis(fold(facts), BASES), "legitimate interest and contract remain"


# -- property tests -----------------------------------------------------------------------

PURPOSES = st.sampled_from([*sorted(BASES), "undeclared"])
KINDS = st.sampled_from(
    [
        "consent.granted",
        "consent.withdrawn",
        "objection.recorded",
        "restriction.placed",
        "restriction.lifted",
    ]
)


@st.composite
def histories(draw: st.DrawFn) -> list[ConsentFact]:
    size = draw(st.integers(min_value=0, max_value=25))
    facts = []
    for n in range(size):
        kind = draw(KINDS)
        purposes: tuple[str, ...] = ()
        if kind.startswith("consent."):
            purposes = (draw(PURPOSES),)
        elif kind == "objection.recorded":
            purposes = tuple(draw(st.lists(PURPOSES, min_size=1, max_size=3, unique=True)))
        facts.append(ConsentFact(f"e{n}", kind, T0 + timedelta(seconds=n), purposes))
    return facts


@st.composite
def deliveries(draw: st.DrawFn, facts: list[ConsentFact]) -> list[ConsentFact]:
    """At-least-once delivery: in log order, with redeliveries of already seen facts."""
    delivered: list[ConsentFact] = []
    for index, current in enumerate(facts):
        delivered.append(current)
        if draw(st.booleans()):
            delivered.append(facts[draw(st.integers(min_value=0, max_value=index))])
    return delivered


def _answers(state: ConsentState) -> dict[str, tuple[bool, str]]:
    return {
        p: (d.allowed, d.reason) for p in [*BASES, "undeclared"] for d in [decide(state, p, BASES)]
    }


@settings(max_examples=300)
@given(data=st.data(), facts=histories())
def test_live_state_with_redeliveries_equals_the_replay(
    data: st.DataObject, facts: list[ConsentFact]
) -> None:
    live = ConsentState()
    for delivered in data.draw(deliveries(facts)):
        live = apply(live, delivered)
    replayed = fold(facts)
    assert live == replayed
    assert _answers(live) == _answers(replayed)


@settings(max_examples=300)
@given(facts=histories(), cut=st.integers(min_value=-1, max_value=26))
def test_point_in_time_answers_equal_a_replay_of_the_prefix(
    facts: list[ConsentFact], cut: int
) -> None:
    moment = T0 + timedelta(seconds=cut)
    assert _answers(fold(facts, until=moment)) == _answers(fold(f for f in facts if f.at <= moment))


@settings(max_examples=200)
@given(facts=histories())
def test_facts_survive_their_read_model_form(facts: list[ConsentFact]) -> None:
    stored = [f.to_document() for f in facts]
    assert fold(ConsentFact.from_document(d) for d in stored) == fold(facts)
