"""Console sessions: held in the console process, named by a random cookie.

The cookie carries only a 256-bit random id (``HttpOnly``, ``SameSite=Strict``, ``Secure``
when the console is reached over TLS); the account and the session's CSRF token stay in
memory. A session ends at logout, after ``ttl_s`` without a request, or when the console
restarts (everyone logs in again: nothing to leak from disk). Every form carries the CSRF
token and a POST without the session's token is refused (403).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from console.accounts import Account

__all__ = ["COOKIE", "Session", "SessionStore"]

COOKIE = "leadtrail_console"


@dataclass
class Session:
    account: Account
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    last_seen: float = 0.0
    notices: list[str] = field(default_factory=list)
    """What the last actions said, shown once on the next page (never carried in a URL,
    where anyone could write one)."""

    def take_notices(self) -> list[str]:
        taken, self.notices = self.notices, []
        return taken

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented, self.csrf)


class SessionStore:
    def __init__(self, ttl_s: float, now: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._now = now
        self._sessions: dict[str, Session] = {}

    def open(self, account: Account) -> tuple[str, Session]:
        self._expire()
        session_id = secrets.token_urlsafe(32)
        session = Session(account, last_seen=self._now())
        self._sessions[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._now()
        if now - session.last_seen > self.ttl_s:
            del self._sessions[session_id]
            return None
        session.last_seen = now
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)

    def close_account(self, account_id: str) -> None:
        """End every session of an account (removed, or its access changed)."""
        for session_id, session in list(self._sessions.items()):
            if session.account.id == account_id:
                del self._sessions[session_id]

    def _expire(self) -> None:
        now = self._now()
        for session_id, session in list(self._sessions.items()):
            if now - session.last_seen > self.ttl_s:
                del self._sessions[session_id]
