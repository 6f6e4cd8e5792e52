"""Who is asking: the session behind the cookie, CSRF on every form, which tenants they see.

* No session: a page redirects to ``/login``; a form post gets 401.
* A form without the session's CSRF token: 403.
* A tenant the account may not see: 404, exactly as for a tenant that does not exist.
* An account removed (or changed) with the CLI loses its sessions at its next request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Form, HTTPException, Request

from console.accounts import Account, AccountDirectory
from console.sessions import COOKIE, Session, SessionStore
from services.common.http import RateLimiter
from services.common.tenants import TenantDirectory

__all__ = [
    "Console",
    "CsrfChecked",
    "CurrentViewer",
    "LoginRequiredError",
    "Viewer",
    "current_viewer",
    "visible_tenants",
]


class LoginRequiredError(Exception):
    """Raised for a page without a session: the app answers with a redirect to /login."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.next = quote(path, safe="/")


@dataclass
class Console:
    """The console's shared state, on ``app.state.console``."""

    accounts: AccountDirectory
    tenants: TenantDirectory
    sessions: SessionStore
    logins: RateLimiter
    """Login attempts per client address and account: 5, then one every 10 s."""
    logins_per_address: RateLimiter = field(default_factory=lambda: RateLimiter(1 / 3, 20))
    """Login attempts per client address, whatever the account: 20, then one every 3 s."""
    password_checks: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def visible_tenants(console: Console, account: Account) -> list[str]:
    """The tenant ids an account sees: every configured one for an operator, its own for a DPO
    (if the tenant still exists)."""
    known = [tenant.id for tenant in console.tenants.all()]
    return known if account.role == "operator" else [t for t in known if t == account.tenant_id]


@dataclass(frozen=True)
class Viewer:
    session_id: str
    session: Session
    tenants: list[str]

    @property
    def account(self) -> Account:
        return self.session.account

    def tenant(self, tenant_id: str) -> str:
        """``tenant_id`` if this viewer may see it; else 404 (never 403: a DPO must not learn
        which other tenants exist)."""
        if tenant_id not in self.tenants:
            raise HTTPException(404, "not found")
        return tenant_id

    def only(self, tenant_id: str | None) -> list[str]:
        """The tenants a filter leaves: all visible ones, or the one asked for (404 if not
        visible)."""
        return self.tenants if not tenant_id else [self.tenant(tenant_id)]


async def current_viewer(request: Request) -> Viewer:
    console = console_of(request)
    session_id = request.cookies.get(COOKIE)
    session = console.sessions.get(session_id)
    if session is not None:
        stored = console.accounts.get(session.account.id)
        if stored is None or stored != session.account:
            console.sessions.close_account(session.account.id)
            session = None
    if session is None or session_id is None:
        if request.method == "GET":
            raise LoginRequiredError(request.url.path)
        raise HTTPException(401, "log in first")
    return Viewer(session_id, session, visible_tenants(console, session.account))


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]


async def csrf_checked(viewer: CurrentViewer, csrf: Annotated[str, Form()] = "") -> Viewer:
    if not viewer.session.csrf_ok(csrf):
        raise HTTPException(403, "the form is stale or forged: reload the page and try again")
    return viewer


CsrfChecked = Annotated[Viewer, Depends(csrf_checked)]
