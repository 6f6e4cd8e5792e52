"""Downloading the answer to an access or portability request (R22, R23).

``GET /v1/privacy-requests/{id}`` shows, once the package is assembled, a signed link that is
valid for ``export_link_ttl_s`` from the moment it is shown (every call issues a fresh one):

    /v1/exports/{request_id}?format=json|csv&expires=<unix seconds>&signature=<hex>

The link is its own credential (HMAC-SHA256 over tenant, request, format and expiry, see
:mod:`services.lead_ingest.export_assembly`), so a tenant can hand it to the person without
sharing its API key. The signature is checked before anything is decrypted, and a link for a
request with no export answers exactly like a changed one (403): an outsider learns nothing
about which exports exist. An expired link answers 410, and once the person was erased the
package is unreadable and the link answers 410 too.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from services.common.export_package import render
from services.common.http import ProblemError, problem_responses
from services.common.logging import get_logger
from services.lead_ingest.api import IngestApi
from services.lead_ingest.export_assembly import LinkError, check

__all__ = ["build_export_router"]

log = get_logger(__name__)


def build_export_router(api: IngestApi) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.get(
        "/exports/{request_id}",
        summary="Download the answer to an access/portability request (signed link)",
        response_class=Response,
        responses={
            200: {
                "description": "the package, as JSON or as CSV (section,record,field,value)",
                "content": {"application/json": {}, "text/csv": {}},
            },
            **problem_responses(
                {
                    403: "the link's signature is not valid, or there is no such export",
                    404: "no package for this request (a valid link whose package is gone)",
                    410: "the link expired, or the person's data was erased",
                    422: "format, expires or signature missing or malformed",
                    429: "too many requests from this address or for this package",
                }
            ),
        },
    )
    async def download(
        request: Request,
        request_id: str,
        expires: Annotated[int, Query(ge=0, description="unix seconds")],
        signature: Annotated[str, Query(pattern=r"^[0-9a-f]{64}$")],
        format: Annotated[Literal["json", "csv"], Query()] = "json",
    ) -> Response:
        api.public.check(request, request_id)  # per package, whatever the signature
        owner = await api.handlers.exports.owner(request_id)
        try:
            # No export: checked all the same against a tenant no link names, so both fail
            # alike (403) and take the same work.
            check(
                api.settings.export_link_bytes(),
                tenant_id=owner if owner is not None else "",
                request_id=request_id,
                fmt=format,
                expires=expires,
                signature=signature,
                now=api.runtime.clock.now(),
            )
        except LinkError as error:
            raise ProblemError(error.status, error.slug, error.title) from None
        found = await api.handlers.exports.package(request_id)
        if owner is None or found is None:
            raise ProblemError(404, "not-found", "Not found", f"no export for {request_id}")
        _, package = found
        if package is None:
            raise ProblemError(
                410, "export-erased", "The person's data was erased since; nothing to download"
            )
        body, media_type = render(package, format)
        log.info("export downloaded", request_id=request_id, format=format)
        return Response(
            body,
            media_type=media_type,
            headers={
                "Content-Disposition": f'attachment; filename="export-{request_id}.{format}"',
                "Cache-Control": "no-store",
            },
        )

    return router
