"""Logging in and out of the console.

The login form is protected against cross-site posting by a double-submit token (a random
value in an ``HttpOnly``, ``SameSite=Strict`` cookie and in the form, which must match), and
attempts are limited per client address (20, then one every 3 s) and per address and account
(5, then one every 10 s). Passwords are checked in worker threads, two at a time, so logins
never stall the pages. A failed login answers the same for an unknown account and a wrong
password, and takes as long.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from console.auth import console_of
from console.sessions import COOKIE
from console.templating import templates
from services.common.http import ProblemError
from services.common.logging import get_logger

__all__ = ["router"]

LOGIN_COOKIE = "leadtrail_console_login"
log = get_logger("console")
router = APIRouter()


def _secure(request: Request) -> bool:
    """Cookies are ``Secure`` when the console is reached over TLS (directly or through a
    proxy that says so)."""
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.lower() == "https"


def _local(path: str) -> str:
    """Only a path of this console (``/...``, not ``//host``): no open redirect after login."""
    return path if path.startswith("/") and not path.startswith("//") else "/requests"


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/requests") -> Response:
    token = secrets.token_urlsafe(32)
    response = templates.TemplateResponse(
        request, "login.html", {"login_token": token, "next": _local(next), "error": None}
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        max_age=3600,
    )
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    account: Annotated[str, Form()],
    password: Annotated[str, Form()],
    login_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/requests",
) -> Response:
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie, login_token):
        raise HTTPException(403, "the login form is stale: reload it and try again")
    address = request.client.host if request.client else "unknown"
    console = console_of(request)
    account_id = account.strip().lower()
    try:
        # Per address first: made-up account names must not buy unlimited attempts.
        console.logins_per_address.check(address)
        console.logins.check(f"{address}|{account_id}")
    except ProblemError:
        raise HTTPException(429, "too many attempts: wait a minute and try again") from None
    async with console.password_checks:
        # scrypt takes ~0.1 s of CPU: off the event loop, a few at a time.
        found = await asyncio.to_thread(console.accounts.authenticate, account_id, password)
    if found is None:
        # Not the input itself: it may be a password typed in the wrong field.
        log.warning("console login refused", client=address)
        return templates.TemplateResponse(
            request,
            "login.html",
            {
                "login_token": login_token,
                "next": _local(next),
                "error": "Unknown account or wrong password.",
            },
            status_code=401,
        )
    session_id, _ = console.sessions.open(found)
    log.info("console login", account=found.id, role=found.role, client=address)
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(
        COOKIE,
        session_id,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )  # a browser-session cookie: the session itself ends after ttl_s without a request
    response.delete_cookie(LOGIN_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    sessions = console_of(request).sessions
    session_id = request.cookies.get(COOKIE)
    session = sessions.get(session_id)
    if session is not None and not session.csrf_ok(csrf):
        raise HTTPException(403, "the form is stale or forged: reload the page")
    sessions.close(session_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response
