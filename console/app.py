"""The console's ASGI app: login, the pages, health, and the answers to errors.

Every response carries a strict Content-Security-Policy (no script at all, styles from the
console only), ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer`` and, for pages,
``Cache-Control: no-store`` (the subject page holds personal data).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from console.accounts import AccountDirectory
from console.auth import Console, LoginRequiredError
from console.login import router as login_router
from console.pages import router
from console.runtime import ConsoleRuntime, DependencyTimeoutError, runtime_of
from console.sampler import MetricsSampler, service_urls_from_env
from console.sessions import SessionStore
from console.settings import ConsoleSettings
from console.templating import templates
from ops.export import open_database
from ops.operator import operator_publisher
from services.common.clock import Clock
from services.common.http import RateLimiter
from services.common.logging import configure_logging, get_logger
from services.common.runtime import clock_for
from services.common.tenants import TenantDirectory

__all__ = ["create_console_app"]

STATIC = Path(__file__).resolve().parent / "static"
LOGIN_COOKIE = "leadtrail_console_login"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
log = get_logger("console")


def create_console_app(
    settings: ConsoleSettings,
    *,
    clock: Clock | None = None,
    service_urls: dict[str, str] | None = None,
) -> FastAPI:
    configure_logging("console", settings.log_level, settings.log_format)
    clock = clock or clock_for(settings)
    console = Console(
        accounts=AccountDirectory(settings.config_dir),
        tenants=TenantDirectory(settings.config_dir),
        sessions=SessionStore(settings.console_session_ttl_s),
        logins=RateLimiter(0.1, 5),
    )
    sampler = MetricsSampler(
        service_urls_from_env() if service_urls is None else service_urls,
        settings.console_metrics_interval_s,
        timeout_s=min(settings.console_request_timeout_s, 5.0),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            db, cipher = await stack.enter_async_context(open_database(settings))
            publisher = await stack.enter_async_context(operator_publisher(settings, clock))
            runtime = ConsoleRuntime(settings, db, cipher, publisher, clock, sampler)
            app.state.runtime = runtime
            sampling = asyncio.create_task(sampler.run(), name="metrics sampler")
            log.info("console ready", services=sorted(sampler.urls))
            try:
                yield
            finally:
                sampler.stop()
                await asyncio.wait([sampling], timeout=settings.shutdown_grace_s)
                await runtime.aclose()
                log.info("console stopped")

    app = FastAPI(title="Leadtrail console", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.console = console
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)
    app.include_router(login_router)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    def error_page(request: Request, status: int, message: str) -> HTMLResponse:
        return templates.TemplateResponse(
            request, "error.html", {"status": status, "message": message}, status_code=status
        )

    @app.exception_handler(LoginRequiredError)
    async def login_required(request: Request, error: LoginRequiredError) -> Response:
        return RedirectResponse(f"/login?next={error.next}", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        return error_page(request, error.status_code, str(error.detail))

    @app.exception_handler(DependencyTimeoutError)
    async def unavailable(request: Request, error: DependencyTimeoutError) -> Response:
        response = error_page(request, 503, f"{error.what}; try again in a moment")
        response.headers["Retry-After"] = str(settings.retry_after_s)
        return response

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/requests", status_code=303)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "console"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        """Ready when the store answers a query within 2 s."""
        runtime = runtime_of(request)
        try:
            async with asyncio.timeout(2.0):
                await runtime.db["data_keys"].find_one({"_id": "readyz-probe"})
        except (TimeoutError, Exception) as error:
            return Response(
                f'{{"status": "not ready", "mongo": "{type(error).__name__}"}}',
                status_code=503,
                media_type="application/json",
                headers={"Retry-After": str(settings.retry_after_s)},
            )
        return Response('{"status": "ready"}', media_type="application/json")

    return app
