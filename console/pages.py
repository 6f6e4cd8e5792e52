"""The console's pages and the actions their forms take.

Pages read (:mod:`console.reads`, the services' declarations, the log); actions publish the
operator's events (a legal hold placed or released, named ``console:<account>``) or redrive a
dead letter as ``leadtrail dlq redrive`` does. Every action answers with a redirect back to
its page (post/redirect/get) and a one-line notice.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console import reads
from console.auth import CsrfChecked, CurrentViewer, Viewer
from console.charts import bar_chart
from console.runtime import DependencyTimeoutError, runtime_of
from contracts.events.operator import ALL_TENANTS, LogVerificationStartedV1
from contracts.events.retention import TENANT_SUBJECT
from ops.audit import AuditError, AuditUnavailableError, audit_timeline
from ops.dlq import (
    HANDLED_COLLECTION,
    DeadLetterNotFoundError,
    handled_letters,
    mark_handled,
    read_dead_letters,
    record_redrive,
    redrive,
)
from ops.export import UnknownSubjectError, build_package
from ops.operator import OperatorError, hold_to_release, place_hold, release_hold
from services.erasure_propagator import declaration as erasure_propagator
from services.lead_ingest import declaration as lead_ingest

__all__ = ["router"]

router = APIRouter()
SUBJECT_ID = re.compile(r"^sub_[0-9a-f]{8,48}$")


def _back(viewer: Viewer, path: str, notice: str) -> RedirectResponse:
    """Back to ``path`` (post/redirect/get), which shows ``notice`` once."""
    viewer.session.notices.append(notice)
    return RedirectResponse(path, status_code=303)


def _page(request: Request, viewer: Viewer, template: str, **context: Any) -> HTMLResponse:
    runtime = runtime_of(request)
    return runtime.templates.TemplateResponse(
        request,
        template,
        {
            "viewer": viewer,
            "account": viewer.account,
            "csrf": viewer.session.csrf,
            "notices": viewer.session.take_notices(),
            "now": runtime.now(),
            **context,
        },
    )


# -- requests ------------------------------------------------------------------------------
RequestType = Annotated[str, Query(alias="type")]
RequestStatus = Annotated[str, Query()]
TenantFilter = Annotated[str, Query()]


async def _request_rows(
    request: Request,
    viewer: CurrentViewer,
    request_type: str,
    status: str,
    tenant: str,
    *,
    limit: int | None,
) -> list[reads.RequestRow]:
    runtime = runtime_of(request)
    async with runtime.deadline():
        return await reads.request_rows(
            runtime.db,
            viewer.only(tenant),
            runtime.now(),
            request_type=request_type or None,
            status=status or None,
            limit=limit,
        )


@router.get("/requests", response_class=HTMLResponse)
async def requests_page(
    request: Request,
    viewer: CurrentViewer,
    request_type: RequestType = "",
    status: RequestStatus = "",
    tenant: TenantFilter = "",
) -> HTMLResponse:
    limit = runtime_of(request).settings.console_register_limit
    rows = await _request_rows(request, viewer, request_type, status, tenant, limit=limit)
    return _page(
        request,
        viewer,
        "requests.html",
        rows=rows,
        types=reads.REQUEST_TYPES,
        statuses=reads.REQUEST_STATUSES,
        chosen={"type": request_type, "status": status, "tenant": tenant},
        csv_query=urlencode({"type": request_type, "status": status, "tenant": tenant}),
        limit=limit,
    )


@router.get("/requests.csv")
async def requests_csv(
    request: Request,
    viewer: CurrentViewer,
    request_type: RequestType = "",
    status: RequestStatus = "",
    tenant: TenantFilter = "",
) -> Response:
    """The register of requests (with the page's filters) as CSV: ids, types, times, receipts;
    no personal data."""
    rows = await _request_rows(request, viewer, request_type, status, tenant, limit=None)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(reads.CSV_HEADER)
    writer.writerows(row.csv_row() for row in rows)
    stamp = runtime_of(request).now().strftime("%Y%m%dT%H%M%SZ")
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="privacy-requests-{stamp}.csv"'},
    )


# -- subject -------------------------------------------------------------------------------
@router.get("/subject", response_class=HTMLResponse)
async def find_subject(
    request: Request,
    viewer: CurrentViewer,
    tenant: Annotated[str, Query()] = "",
    ref: Annotated[str, Query()] = "",
) -> Response:
    """The search form's target: a subject id or a lead id of a tenant -> its page."""
    if not tenant or not ref.strip():
        return _page(request, viewer, "find_subject.html", tenant=tenant, ref=ref)
    tenant_id = viewer.tenant(tenant)
    runtime = runtime_of(request)
    subject_id = ref.strip()
    if subject_id.startswith("lead_"):
        async with runtime.deadline():
            found = await lead_ingest.subject_of_lead(runtime.db, tenant_id, subject_id)
        if found is None:
            raise HTTPException(404, f"no lead {subject_id} in {tenant_id}")
        subject_id = found
    return RedirectResponse(
        f"/subjects/{quote(tenant_id, safe='')}/{quote(subject_id, safe='')}", status_code=303
    )


@router.get("/subjects/{tenant}/{subject_id}", response_class=HTMLResponse)
async def subject_page(
    request: Request, viewer: CurrentViewer, tenant: str, subject_id: str
) -> Response:
    """One person: what every service holds (decrypted while the key exists) and the
    timeline from the log. Personal data appears only here, never in a URL."""
    tenant_id = viewer.tenant(tenant)
    if subject_id.startswith("lead_"):  # a lead's page is its subject's
        return RedirectResponse(
            f"/subject?{urlencode({'tenant': tenant_id, 'ref': subject_id})}", status_code=303
        )
    runtime = runtime_of(request)
    async with runtime.deadline():
        try:
            package = await build_package(
                runtime.db, runtime.cipher, runtime.settings.config_dir, tenant_id, subject_id
            )
        except UnknownSubjectError:
            raise HTTPException(404, "no such subject") from None
        try:
            timeline = await audit_timeline(
                runtime.settings.kafka_bootstrap,
                runtime.settings.topic_prefix,
                runtime.cipher,
                tenant_id,
                subject_id,
            )
        except AuditUnavailableError:
            raise DependencyTimeoutError("Kafka did not answer") from None
        except AuditError:
            timeline = []  # held in a read model, no event on the log (yet)
    erased = any(entry.type == "erasure.completed" for entry in timeline)
    return _page(
        request,
        viewer,
        "subject.html",
        tenant_id=tenant_id,
        subject_id=subject_id,
        sections=package.sections,
        timeline=timeline,
        erased=erased,
    )


# -- retention and holds -------------------------------------------------------------------
@router.get("/retention", response_class=HTMLResponse)
async def retention_page(
    request: Request, viewer: CurrentViewer, tenant: Annotated[str, Query()] = ""
) -> HTMLResponse:
    runtime = runtime_of(request)
    tenants = viewer.only(tenant)
    async with runtime.deadline():
        per_tenant = [await reads.tenant_retention(runtime.db, t) for t in tenants]
        weeks = await reads.expiries_per_week(runtime.db, tenants, runtime.now())
    return _page(
        request,
        viewer,
        "retention.html",
        per_tenant=per_tenant,
        chosen_tenant=tenant,
        chart=bar_chart("Schedules falling due, per week, next 90 days", weeks),
    )


@router.post("/holds")
async def place_hold_action(
    request: Request,
    viewer: CsrfChecked,
    tenant: Annotated[str, Form()],
    reason: Annotated[str, Form()],
    subject_id: Annotated[str, Form()] = "",
) -> RedirectResponse:
    tenant_id = viewer.tenant(tenant)
    runtime = runtime_of(request)
    subject = subject_id.strip() or None
    if not reason.strip():
        return _back(viewer, "/retention", "a legal hold needs a reason: nothing was placed")
    if subject is not None and not SUBJECT_ID.match(subject):
        return _back(viewer, "/retention", f"{subject[:80]!r} is not a subject id (sub_…)")
    async with runtime.unavailable_as_503():
        try:
            envelope = await place_hold(
                runtime.publisher,
                tenant_id=tenant_id,
                subject_id=subject,
                reason=reason.strip(),
                placed_by=viewer.account.actor,
            )
        except OperatorError as error:
            return _back(viewer, "/retention", str(error))
    placed = f"hold placed ({envelope.data['hold_id']}, event {envelope.id})"
    return _back(viewer, "/retention", placed)


@router.post("/holds/{tenant}/{hold_id}/release")
async def release_hold_action(
    request: Request,
    viewer: CsrfChecked,
    tenant: str,
    hold_id: str,
    reason: Annotated[str, Form()] = "",
) -> RedirectResponse:
    tenant_id = viewer.tenant(tenant)
    runtime = runtime_of(request)
    if not reason.strip():
        return _back(viewer, "/retention", "a release needs a reason: the hold stays")
    async with runtime.deadline():
        try:
            hold = await hold_to_release(erasure_propagator.holds(runtime.db), tenant_id, hold_id)
        except OperatorError as error:
            return _back(viewer, "/retention", str(error))
    async with runtime.unavailable_as_503():
        envelope = await release_hold(
            runtime.publisher,
            tenant_id=tenant_id,
            subject_id=hold["subject_id"] if hold["scope"] == "subject" else None,
            hold_id=hold_id,
            released_by=viewer.account.actor,
            reason=reason.strip(),
        )
    return _back(viewer, "/retention", f"hold {hold_id} released (event {envelope.id})")


# -- CRM -----------------------------------------------------------------------------------
@router.get("/crm", response_class=HTMLResponse)
async def crm_page(
    request: Request, viewer: CurrentViewer, tenant: Annotated[str, Query()] = ""
) -> HTMLResponse:
    runtime = runtime_of(request)
    tenants = viewer.only(tenant)
    latest = runtime.sampler.latest
    circuits = None if latest is None or "crm-sync" in latest.unreachable else latest.circuits
    async with runtime.deadline():
        connections = await reads.connection_rows(
            runtime.db, runtime.settings.config_dir, tenants, circuits
        )
        letters = [
            letter
            async for letter in read_dead_letters(
                runtime.settings.kafka_bootstrap, runtime.settings.topic_prefix
            )
            if letter.tenant_id in tenants
        ]
        handled = await handled_letters(runtime.db[HANDLED_COLLECTION])
    return _page(
        request,
        viewer,
        "crm.html",
        connections=connections,
        letters=letters,
        handled=handled,
        chosen_tenant=tenant,
    )


@router.post("/dead-letters/{letter_id}/redrive")
async def redrive_action(request: Request, viewer: CsrfChecked, letter_id: str) -> Response:
    """Reads under the page's deadline; the redrive and its records (handled, the event)
    are bounded by Kafka's and the store's own deadlines instead, so a slow page never leaves
    a record sent again without the event that names who asked."""
    runtime = runtime_of(request)
    settings = runtime.settings
    async with runtime.deadline():
        mine = [
            letter
            async for letter in read_dead_letters(settings.kafka_bootstrap, settings.topic_prefix)
            if letter.id == letter_id and letter.tenant_id in viewer.tenants
        ]
    if not mine:
        raise HTTPException(404, "not found")
    actor = viewer.account.actor
    async with runtime.unavailable_as_503():
        try:
            letter = await redrive(
                settings.kafka_bootstrap, settings.topic_prefix, letter_id, by=actor
            )
        except DeadLetterNotFoundError:
            raise HTTPException(404, "not found") from None
        await mark_handled(runtime.db[HANDLED_COLLECTION], letter, runtime.now(), by=actor)
        await record_redrive(runtime.publisher, letter, actor)
    return _back(viewer, "/crm", f"dead letter {letter_id} sent again to {letter.source_topic}")


# -- system --------------------------------------------------------------------------------
@router.get("/system", response_class=HTMLResponse)
async def system_page(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    runtime = runtime_of(request)
    async with runtime.deadline():
        durations = await reads.erasure_durations(runtime.db, viewer.tenants)
    rates = runtime.sampler.events_per_second()[-60:]
    latest = runtime.sampler.latest
    return _page(
        request,
        viewer,
        "system.html",
        lag=sorted((latest.lag if latest else {}).items()),
        unreachable=latest.unreachable if latest else {},
        sampled=latest is not None,
        rate_chart=bar_chart(
            "Events published per second, whole cluster",
            rates,
            unit="/s",
            label_every=max(len(rates) // 6, 1),
        ),
        erasure_chart=bar_chart("Erasures by time to complete", durations),
        verification=runtime.verification,
        report=runtime.verification.report_for(viewer.account.tenant_id)
        if runtime.verification is not None
        else None,
        operator=viewer.account.role == "operator",
    )


@router.post("/system/verify")
async def verify_action(request: Request, viewer: CsrfChecked) -> RedirectResponse:
    """Start ``leadtrail verify`` over the whole log; each viewer sees the report of its own
    tenants' chains (an operator: all of it)."""
    runtime = runtime_of(request)
    account = viewer.account
    run = runtime.claim_verification(account.actor)
    if run is None:
        return _back(viewer, "/system", "a verification is running")
    try:
        async with runtime.unavailable_as_503():
            await runtime.publisher.publish(
                LogVerificationStartedV1(
                    started_by=account.actor,
                    scope="all" if account.tenant_id is None else "tenant",
                ),
                tenant_id=account.tenant_id or ALL_TENANTS,
                subject_id=TENANT_SUBJECT,
                correlation_id=str(uuid.uuid4()),
            )
    except DependencyTimeoutError:
        runtime.abandon_verification(run)
        raise
    runtime.start_verification(run)
    return _back(viewer, "/system", "verification started")
