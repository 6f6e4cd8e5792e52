"""consent-ledger's HTTP API: consents with proof, withdrawal, objection, restriction, and the
public one-click unsubscribe (R9-R14, R26)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import timedelta
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.events import consent
from contracts.events.common import Channel, Purpose
from services.common.clear_fields import CollectionPoint, NoticeVersion
from services.common.consent import ConsentFact, ConsentState, decide
from services.common.consent_claims import check_consent
from services.common.http import (
    Caller,
    ProblemError,
    PublicRateLimits,
    problem_responses,
    publish_or_503,
)
from services.common.logging import current_correlation_id
from services.common.netprivacy import shorten_ip
from services.common.publisher import derived_event_id
from services.common.purposes import TenantPurposes
from services.common.runtime import Runtime
from services.common.store import Document
from services.consent_ledger.projection import ConsentProjection
from services.consent_ledger.settings import ConsentSettings
from services.consent_ledger.unsubscribe import (
    InvalidTokenError,
    UnsubscribeToken,
    issue,
    verify,
)

__all__ = ["ConsentApi", "build_router"]

PROBLEMS = problem_responses(
    {
        400: "the body is not parseable JSON",
        401: "missing or invalid API key",
        404: "no such subject for this tenant",
        413: "request body too large",
        422: "invalid request (with an errors list)",
        429: "rate limited; see Retry-After",
        503: "Kafka or the document store unavailable; retry later",
    }
)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GrantIn(_In):
    purpose: Purpose
    channel: Channel
    notice_version: NoticeVersion
    notice_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    given_at: AwareDatetime
    collection_point: CollectionPoint | None = None
    ip: IPv4Address | IPv6Address | None = None
    user_agent: Annotated[str, Field(max_length=500)] | None = None


class ObjectionIn(_In):
    purposes: Annotated[list[Purpose], Field(min_length=1, max_length=32)]


class RestrictionIn(_In):
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class UnsubscribeLinkIn(_In):
    purpose: Purpose


class Recorded(BaseModel):
    event_id: str
    type: str
    status: Literal["recorded"] = "recorded"


class UnsubscribeLink(BaseModel):
    url: str
    token: str
    purpose: str
    expires_at: AwareDatetime


class Unsubscribed(BaseModel):
    """The answer to a one-click unsubscribe (``Accept: application/json``)."""

    purpose: str
    status: Literal["withdrawn", "already_withdrawn", "superseded"] = Field(
        description="withdrawn: the consent the link was issued for is withdrawn now (202); "
        "already_withdrawn: it was before, nothing changed (200); superseded: the person "
        "agreed again after the link was issued, and the link does not reach that (200)"
    )
    event_id: str | None = Field(
        description="the consent.withdrawn event (the same for every click on the link); "
        "null when nothing changed"
    )
    withdrawn_at: AwareDatetime | None = Field(
        description="already_withdrawn: when the consent was withdrawn (the first time)"
    )


class PurposeView(BaseModel):
    purpose: str
    basis: str | None
    allowed: bool
    reason: str
    consented: bool
    granted_at: AwareDatetime | None
    withdrawn_at: AwareDatetime | None
    objected_at: AwareDatetime | None


class HistoryEntry(BaseModel):
    event_id: str
    type: str
    version: int
    at: AwareDatetime
    data: dict[str, Any]
    proof: dict[str, Any] | None = Field(
        description="shortened IP and user agent, decrypted; null once the subject was erased"
    )


class ConsentsView(BaseModel):
    subject_id: str
    restricted: bool
    suppressed: bool
    purposes: list[PurposeView]
    history: list[HistoryEntry]


@dataclass
class ConsentApi:
    runtime: Runtime
    settings: ConsentSettings
    public: PublicRateLimits
    projection: ConsentProjection
    purposes: TenantPurposes

    async def subject(self, tenant_id: str, subject_id: str) -> Document:
        document = await self.projection.subject(tenant_id, subject_id)
        if document is None:
            raise ProblemError(404, "not-found", "Not found", f"no subject {subject_id}")
        return document

    async def publish(
        self, data: BaseModel, tenant_id: str, subject_id: str, pii: BaseModel | None = None
    ) -> Recorded:
        envelope = await publish_or_503(
            self.runtime.publisher,
            data,
            within_s=10.0,
            hint="retry later",
            pii=pii,
            tenant_id=tenant_id,
            subject_id=subject_id,
            correlation_id=current_correlation_id(),
        )
        return Recorded(event_id=envelope.id, type=envelope.type)

    async def view(self, tenant_id: str, document: Document) -> ConsentsView:
        state: ConsentState = self.projection.state(document)
        bases = self.purposes.for_tenant(tenant_id).bases()
        names = sorted(set(bases) | set(state.purposes))
        purposes = []
        for name in names:
            decision = decide(state, name, bases)
            current = state.purpose(name)
            purposes.append(
                PurposeView(
                    purpose=name,
                    basis=bases.get(name),
                    allowed=decision.allowed,
                    reason=decision.reason,
                    consented=current.consented,
                    granted_at=current.granted_at,
                    withdrawn_at=current.withdrawn_at,
                    objected_at=current.objected_at,
                )
            )
        history = []
        for entry in document.get("history", []):
            proof = None
            if entry.get("proof"):
                proof = await self.runtime.cipher.open_sealed(document, entry["proof"])
            history.append(
                HistoryEntry(
                    event_id=entry["event_id"],
                    type=entry["type"],
                    version=entry["version"],
                    at=entry["at"],
                    data=entry["data"],
                    proof=proof,
                )
            )
        return ConsentsView(
            subject_id=document["subject_id"],
            restricted=state.restricted,
            suppressed=bool(document.get("suppressed")),
            purposes=purposes,
            history=history,
        )

    def unsubscribe_url(self, token: str) -> str:
        """From the configured public URL, never from the request: its Host header is the
        caller's to choose, and the link goes to the person (issue 16)."""
        return f"{self.settings.public_base_url()}/v1/unsubscribe/{token}"

    async def unsubscribe(self, token_text: str) -> UnsubscribeToken:
        try:
            token = verify(
                self.settings.unsubscribe_key_bytes(), token_text, self.runtime.clock.now()
            )
        except InvalidTokenError as error:
            raise ProblemError(404, "invalid-unsubscribe-link", str(error)) from None
        return token

    def link_token(self, document: Document, purpose: str) -> UnsubscribeToken:
        """A link that withdraws the grant in force now, and no later one (409 without one)."""
        grant = self.projection.current_grant(document, purpose)
        if grant is None or not self.projection.state(document).purpose(purpose).consented:
            raise ProblemError(
                409,
                "no-consent-in-force",
                "No consent to withdraw",
                f"the subject has no consent to {purpose} in force",
            )
        expires = self.runtime.clock.now() + timedelta(days=self.settings.unsubscribe_ttl_days)
        return UnsubscribeToken(
            document["tenant_id"], document["subject_id"], purpose, expires, grant.event_id
        )

    def issued_for(self, token: UnsubscribeToken, grant: ConsentFact) -> bool:
        """Whether the link was issued for this grant. Tokens from before grant ids were
        recorded reach a grant given before they were issued (expiry minus today's TTL)."""
        if token.grant_id is not None:
            return grant.event_id == token.grant_id
        issued = token.expires_at - timedelta(days=self.settings.unsubscribe_ttl_days)
        return grant.at <= issued

    async def unsubscribe_now(self, token: UnsubscribeToken) -> Unsubscribed:
        """Withdraw the grant the link was issued for, once: every click on one link publishes
        the same event id (consumers apply it once, so the first withdrawn_at stands), and a
        click once it is withdrawn, or after the person agreed again, changes nothing."""
        document = await self.projection.subject(token.tenant_id, token.subject_id)
        grant = self.projection.current_grant(document, token.purpose)
        current = self.projection.state(document).purpose(token.purpose)
        if grant is None or not self.issued_for(token, grant):
            return Unsubscribed(
                purpose=token.purpose, status="superseded", event_id=None, withdrawn_at=None
            )
        if not current.consented:
            return Unsubscribed(
                purpose=token.purpose,
                status="already_withdrawn",
                event_id=None,
                withdrawn_at=current.withdrawn_at,
            )
        envelope = await publish_or_503(
            self.runtime.publisher,
            consent.ConsentWithdrawnV1(purpose=token.purpose, origin="unsubscribe"),
            within_s=10.0,
            hint="retry later",
            tenant_id=token.tenant_id,
            subject_id=token.subject_id,
            correlation_id=current_correlation_id(),
            event_id=derived_event_id(grant.event_id, "consent.withdrawn/unsubscribe"),
        )
        return Unsubscribed(
            purpose=token.purpose, status="withdrawn", event_id=envelope.id, withdrawn_at=None
        )


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width"><title>{title}</title></head>
<body style="font-family:sans-serif;max-width:32rem;margin:3rem auto">
<h1>{title}</h1><p>{text}</p>{form}</body></html>"""


def page(title: str, text: str, form: str = "", status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        PAGE.format(title=html.escape(title), text=html.escape(text), form=form), status
    )


def build_router(api: ConsentApi) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=PROBLEMS)

    @router.get(
        "/subjects/{subject_id}/consents",
        response_model=ConsentsView,
        summary="Current consent state per purpose, and the full history with proof",
    )
    async def get_consents(subject_id: str, who: Caller) -> ConsentsView:
        return await api.view(who.id, await api.subject(who.id, subject_id))

    @router.get(
        "/subjects/{subject_id}/consents/proof",
        summary="Proof export: the history with proof, as a JSON download",
        response_model=ConsentsView,
    )
    async def get_proof(subject_id: str, who: Caller) -> JSONResponse:
        view = await api.view(who.id, await api.subject(who.id, subject_id))
        return JSONResponse(
            view.model_dump(mode="json"),
            headers={
                "Content-Disposition": f'attachment; filename="consent-proof-{subject_id}.json"'
            },
        )

    @router.post(
        "/subjects/{subject_id}/consents",
        status_code=202,
        response_model=Recorded,
        summary="Record a consent given outside a lead form (with its proof)",
        responses=problem_responses({410: "lead-erased: the person was erased"}),
    )
    async def grant(subject_id: str, body: GrantIn, who: Caller) -> Recorded:
        if (await api.subject(who.id, subject_id)).get("erased"):
            # The proof is personal data: it would be encrypted under a new key generation
            # that no erasure destroys.
            raise ProblemError(
                410,
                "lead-erased",
                "This person's data was erased",
                "nothing more may be recorded about an erased person (R20)",
            )
        check_consent(
            purposes=[body.purpose],
            given_at=body.given_at,
            now=api.runtime.clock.now(),
            declared=api.purposes.for_tenant(who.id),
            given_at_field="given_at",
            purpose_field="purpose",
        )
        return await api.publish(
            consent.ConsentGrantedV1(
                purpose=body.purpose,
                channel=body.channel,
                notice_version=body.notice_version,
                notice_sha256=body.notice_sha256,
                given_at=body.given_at,
                collection_point=body.collection_point,
                origin="api",
            ),
            who.id,
            subject_id,
            consent.ConsentProofV1(ip_prefix=shorten_ip(body.ip), user_agent=body.user_agent),
        )

    @router.post(
        "/subjects/{subject_id}/consents/{purpose}/withdraw",
        status_code=202,
        response_model=Recorded,
        summary="Withdraw consent to one purpose, effective from now on (R11)",
    )
    async def withdraw(subject_id: str, purpose: Purpose, who: Caller) -> Recorded:
        await api.subject(who.id, subject_id)
        return await api.publish(
            consent.ConsentWithdrawnV1(purpose=purpose, origin="api"), who.id, subject_id
        )

    @router.post(
        "/subjects/{subject_id}/objections",
        status_code=202,
        response_model=Recorded,
        summary="Record an objection to purposes (R13)",
    )
    async def object_to(subject_id: str, body: ObjectionIn, who: Caller) -> Recorded:
        await api.subject(who.id, subject_id)
        recorded = await api.publish(
            consent.ObjectionRecordedV1(purposes=body.purposes, origin="operator"),
            who.id,
            subject_id,
        )
        declared = api.purposes.for_tenant(who.id).purposes
        if any(declared.get(p) and declared[p].suppresses for p in body.purposes):
            await api.publish(
                consent.SuppressionAddedV1(origin="operator", reason="objection"),
                who.id,
                subject_id,
            )
        return recorded

    @router.post(
        "/subjects/{subject_id}/restriction",
        status_code=202,
        response_model=Recorded,
        summary="Restrict processing to storage (R14)",
    )
    async def restrict(subject_id: str, body: RestrictionIn, who: Caller) -> Recorded:
        await api.subject(who.id, subject_id)
        return await api.publish(
            consent.RestrictionPlacedV1(origin="operator", reason=body.reason), who.id, subject_id
        )

    @router.delete(
        "/subjects/{subject_id}/restriction",
        status_code=202,
        response_model=Recorded,
        summary="Lift the restriction; the event is the cue to tell the subject (R14)",
    )
    async def lift(subject_id: str, who: Caller) -> Recorded:
        await api.subject(who.id, subject_id)
        return await api.publish(consent.RestrictionLiftedV1(origin="operator"), who.id, subject_id)

    @router.post(
        "/subjects/{subject_id}/unsubscribe-links",
        status_code=201,
        response_model=UnsubscribeLink,
        summary="A signed, expiring one-click unsubscribe link for one marketing purpose; it "
        "withdraws the consent in force now, never a later one",
        responses=problem_responses({409: "the subject has no consent to the purpose in force"}),
    )
    async def unsubscribe_link(
        subject_id: str, body: UnsubscribeLinkIn, who: Caller
    ) -> UnsubscribeLink:
        document = await api.subject(who.id, subject_id)
        if body.purpose not in api.purposes.for_tenant(who.id).purposes:
            raise ProblemError(
                422, "unknown-purpose", "Unknown purpose", f"{body.purpose} is not declared"
            )
        link = api.link_token(document, body.purpose)
        token = issue(api.settings.unsubscribe_key_bytes(), link)
        return UnsubscribeLink(
            url=api.unsubscribe_url(token),
            token=token,
            purpose=body.purpose,
            expires_at=link.expires_at,
        )

    @router.get(
        "/unsubscribe/{token}",
        response_class=HTMLResponse,
        summary="Public page of an unsubscribe link (no API key); confirms with one click",
        responses={
            404: {"description": "invalid or expired link"},
            **problem_responses({429: "too many requests from this address or for this link"}),
        },
    )
    async def unsubscribe_page(token: str, request: Request) -> HTMLResponse:
        api.public.check(request, token)
        try:
            parsed = await api.unsubscribe(token)
        except ProblemError as error:
            return page("Link not valid", error.title, status=404)
        form = (
            f'<form method="post" action="/v1/unsubscribe/{html.escape(token)}">'
            '<button type="submit">Unsubscribe</button></form>'
        )
        return page(
            "Unsubscribe",
            f"Stop receiving messages for: {parsed.purpose.replace('_', ' ')}.",
            form,
        )

    @router.post(
        "/unsubscribe/{token}",
        summary="One click: withdraw the consent the link was issued for (RFC 8058 "
        "compatible); a repeat changes nothing",
        response_model=Unsubscribed,
        status_code=202,
        responses={
            200: {"description": "nothing changed (see status)", "model": Unsubscribed},
            404: {"description": "invalid or expired link"},
            **problem_responses({429: "too many requests from this address or for this link"}),
        },
    )
    async def unsubscribe_now(token: str, request: Request) -> Any:
        api.public.check(request, token)
        wants_json = "application/json" in request.headers.get("accept", "")
        try:
            parsed = await api.unsubscribe(token)
        except ProblemError:
            if wants_json:
                raise
            return page("Link not valid", "This link is not valid or has expired.", status=404)
        result = await api.unsubscribe_now(parsed)
        if wants_json:
            status = 202 if result.status == "withdrawn" else 200
            return JSONResponse(result.model_dump(mode="json"), status_code=status)
        if result.status == "superseded":
            return page(
                "Nothing changed",
                "You agreed again after this link was sent; to unsubscribe, use the link in "
                "the latest message you received.",
            )
        return page("Unsubscribed", "You will not receive these messages any more.")

    return router
