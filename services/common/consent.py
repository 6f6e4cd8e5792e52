"""May I process subject S for purpose P at time T? One answer, for every service and replay.

Every service folds the same consent events (``consent.granted``, ``consent.withdrawn``,
``objection.recorded``, ``restriction.placed``/``lifted``) with :func:`fold` and asks
:func:`decide`; nothing else is consulted but the tenant's declared purposes (their legal
bases, R9). Because the state is a pure fold of the log, a replay gives the same answers.

The rules (R9-R14, R28):

* a restriction in force stops all processing but storage;
* an objection to a purpose stops it, unless its basis is a contract or a legal obligation
  (GDPR art. 21 does not reach those);
* basis ``consent``: allowed while the latest grant for the purpose is not followed by a
  withdrawal. Withdrawal is effective from its event on and never retroactive: asking about a
  moment before it still says yes. A new grant after an objection answers the objection;
* bases ``legitimate_interest``, ``contract``, ``legal_obligation``: allowed;
* a purpose the tenant did not declare: never.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "CONSENT_EVENT_TYPES",
    "ConsentFact",
    "ConsentState",
    "Decision",
    "PurposeState",
    "apply",
    "decide",
    "fact_from_event",
    "fold",
    "has_remaining_basis",
]

LegalBasis = Literal["consent", "contract", "legitimate_interest", "legal_obligation"]

CONSENT_EVENT_TYPES = frozenset(
    {
        "consent.granted",
        "consent.withdrawn",
        "objection.recorded",
        "restriction.placed",
        "restriction.lifted",
    }
)


@dataclass(frozen=True)
class ConsentFact:
    """The part of a consent event the decision needs; small enough to keep in a read model."""

    event_id: str
    type: str
    at: datetime
    purposes: tuple[str, ...] = ()

    def to_document(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": self.type,
            "at": self.at,
            "purposes": list(self.purposes),
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ConsentFact:
        return cls(
            document["event_id"],
            document["type"],
            document["at"],
            tuple(document.get("purposes", ())),
        )


def fact_from_event(
    event_type: str, event_id: str, at: datetime, data: Mapping[str, Any]
) -> ConsentFact | None:
    """The fact of a consent event, or None for events that don't bear on the decision."""
    if event_type not in CONSENT_EVENT_TYPES:
        return None
    if event_type in ("consent.granted", "consent.withdrawn"):
        purposes: tuple[str, ...] = (str(data["purpose"]),)
    elif event_type == "objection.recorded":
        purposes = tuple(str(p) for p in data["purposes"])
    else:
        purposes = ()
    return ConsentFact(event_id, event_type, at, purposes)


@dataclass(frozen=True)
class PurposeState:
    granted_at: datetime | None = None
    withdrawn_at: datetime | None = None
    objected_at: datetime | None = None

    @property
    def consented(self) -> bool:
        """Granted, and not withdrawn since (log order decides, not clocks)."""
        return self.granted_at is not None and self.withdrawn_at is None


@dataclass(frozen=True)
class ConsentState:
    purposes: Mapping[str, PurposeState] = field(default_factory=dict)
    restricted: bool = False
    seen: frozenset[str] = frozenset()

    def purpose(self, name: str) -> PurposeState:
        return self.purposes.get(name, PurposeState())


def apply(state: ConsentState, fact: ConsentFact) -> ConsentState:
    """The state after one more fact; applying a fact twice changes nothing (redelivery)."""
    if fact.event_id in state.seen:
        return state
    purposes = dict(state.purposes)
    restricted = state.restricted
    for name in fact.purposes:
        current = purposes.get(name, PurposeState())
        if fact.type == "consent.granted":
            # A fresh, explicit consent also answers an earlier objection to the purpose.
            current = PurposeState(granted_at=fact.at)
        elif fact.type == "consent.withdrawn":
            current = replace(current, withdrawn_at=fact.at)
        elif fact.type == "objection.recorded":
            current = replace(current, objected_at=current.objected_at or fact.at)
        purposes[name] = current
    if fact.type == "restriction.placed":
        restricted = True
    elif fact.type == "restriction.lifted":
        restricted = False
    return ConsentState(purposes, restricted, state.seen | {fact.event_id})


def fold(facts: Iterable[ConsentFact], *, until: datetime | None = None) -> ConsentState:
    """Fold facts in log order; with ``until``, only those that happened by then."""
    state = ConsentState()
    for fact in facts:
        if until is None or fact.at <= until:
            state = apply(state, fact)
    return state


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    basis: LegalBasis | None = None


def decide(state: ConsentState, purpose: str, bases: Mapping[str, LegalBasis]) -> Decision:
    basis = bases.get(purpose)
    if basis is None:
        return Decision(False, f"purpose {purpose!r} is not declared by the tenant")
    if state.restricted:
        return Decision(False, "processing is restricted (R14)", basis)
    current = state.purpose(purpose)
    if current.objected_at is not None and basis not in ("contract", "legal_obligation"):
        return Decision(False, f"the subject objected to {purpose} (R13)", basis)
    if basis == "consent":
        if current.consented:
            reason = "consent given"
        elif current.granted_at is not None:
            reason = "consent withdrawn (R11)"
        else:
            reason = "no consent given"
        return Decision(current.consented, reason, basis)
    return Decision(True, f"legal basis: {basis}", basis)


def has_remaining_basis(state: ConsentState, bases: Mapping[str, LegalBasis]) -> bool:
    """Whether any declared purpose may still process the subject, restriction aside (R12)."""
    unrestricted = replace(state, restricted=False)
    return any(decide(unrestricted, purpose, bases).allowed for purpose in bases)
