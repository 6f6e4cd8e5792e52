"""HTTP plumbing shared by the adapters: one client, the secret, and failures as CrmError.

Messages name the connection and the operation ("create contact"), never a URL: URLs can carry
record ids, search terms (an email address) or, for Pipedrive's ``api_token``, the secret.
"""

from __future__ import annotations

import functools
import json
import ssl
import time
from collections.abc import Collection, Mapping
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from services.common.logging import get_logger
from services.crm_sync.adapters.base import CrmError, parse_retry_after
from services.crm_sync.adapters.config import ConnectionConfig, SecretUnavailableError

__all__ = ["HttpAdapter", "json_or_none"]

USER_AGENT = "leadtrail-crm-sync/1"
_REDACTED = "[redacted]"


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every adapter: loading the CA bundle takes ~50 ms, and
    crm-sync makes an adapter per tenant connection."""
    return httpx.create_ssl_context()


def json_or_none(response: httpx.Response) -> Any:
    """The response's JSON, or None when it has none or it isn't JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


class HttpAdapter:
    """Base of the HTTP adapters. Subclasses set ``kind``/``vendor`` and may override hooks:

    * ``_auth`` - headers and query parameters that authenticate a request;
    * ``_error_text`` - the vendor's error message from an error response;
    * ``_classify`` - (transient, retry_after) for an error response;
    * ``_observe`` - look at every response (rate-limit headers);
    * ``_before_send`` - wait or refuse before a request (pacing).
    """

    kind: str  # an instance attribute for the CrmAdapter protocol; subclasses set it
    vendor: ClassVar[str]

    def __init__(self, config: ConnectionConfig, client: httpx.AsyncClient | None = None) -> None:
        if config.kind != self.kind:
            raise ValueError(f"{type(self).__name__} needs a {self.kind} connection")
        self.config = config
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=config.timeout_s, headers={"User-Agent": USER_AGENT}, verify=_tls_context()
        )
        self._secret: SecretStr | None = None
        self._log = get_logger("crm_sync.adapters").bind(connection=config.id, crm=config.kind)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(connection={self.config.id!r})"

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # -- secret ------------------------------------------------------------------------
    def _secret_value(self) -> str:
        if self._secret is None:
            try:
                self._secret = self.config.resolve_secret()
            except SecretUnavailableError as error:
                raise CrmError(str(error), status=None, transient=False) from None
        return self._secret.get_secret_value()

    def _redact(self, text: str) -> str:
        secret = self._secret.get_secret_value() if self._secret is not None else ""
        return text.replace(secret, _REDACTED) if len(secret) >= 4 else text

    # -- hooks -------------------------------------------------------------------------
    def _auth(self) -> tuple[dict[str, str], dict[str, str]]:
        return {"Authorization": f"Bearer {self._secret_value()}"}, {}

    def _error_text(self, response: httpx.Response) -> str:
        return response.reason_phrase or "error"

    def _classify(self, response: httpx.Response) -> tuple[bool, float | None]:
        status = response.status_code
        transient = status == 429 or status >= 500
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return transient, retry_after if transient else None

    def _observe(self, response: httpx.Response) -> None:
        return None

    async def _before_send(self, what: str) -> None:
        return None

    # -- requests ----------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        json_body: object = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        expect: Collection[int] = (200,),
        url: str | None = None,
    ) -> httpx.Response:
        """Send one request; return the response when its status is in ``expect``.

        ``what`` names the operation in errors and logs. Anything else raises CrmError.
        """
        await self._before_send(what)
        auth_headers, auth_params = self._auth()
        all_headers = {**auth_headers, **(headers or {})}
        all_params: dict[str, str | int] = {**(params or {}), **auth_params}
        started = time.monotonic()
        try:
            response = await self._client.request(
                method,
                url or self.config.api_root + path,
                json=json_body if content is None else None,
                content=content,
                headers=all_headers,
                params=all_params or None,
                timeout=self.config.timeout_s,
                follow_redirects=False,
            )
        except httpx.TimeoutException:
            raise self._failure(what, "timed out", status=None, transient=True) from None
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as error:
            raise self._failure(what, type(error).__name__, status=None, transient=False) from None
        except httpx.TransportError as error:
            reason = f"connection failed ({type(error).__name__})"
            raise self._failure(what, reason, status=None, transient=True) from None
        self._observe(response)
        self._log.debug(
            "crm call",
            op=what,
            status=response.status_code,
            ms=round((time.monotonic() - started) * 1000),
        )
        if response.status_code in expect:
            return response
        if response.status_code == 401:
            self._secret = None  # read it again next time: it may have been rotated
        transient, retry_after = self._classify(response)
        raise self._failure(
            what,
            f"{response.status_code} {self._error_text(response)}",
            status=response.status_code,
            transient=transient,
            retry_after=retry_after,
            body=response.text,
        )

    def _failure(
        self,
        what: str,
        reason: str,
        *,
        status: int | None,
        transient: bool,
        retry_after: float | None = None,
        body: str | None = None,
    ) -> CrmError:
        message = self._redact(f"{self.vendor} {what} failed: {reason}")
        if transient:  # vendor error text can quote personal data: only our own text is logged
            self._log.warning(
                "crm call failed",
                op=what,
                status=status,
                reason=reason if status is None else None,
                retry_after=retry_after,
            )
        return CrmError(
            message,
            status=status,
            transient=transient,
            retry_after=retry_after,
            body=self._redact(body) if body is not None else None,
        )

    def _unexpected(self, what: str, response: httpx.Response) -> CrmError:
        """A 2xx answer that lacks what the vendor documents (an id, say): not retryable."""
        return self._failure(
            what,
            "unexpected response",
            status=response.status_code,
            transient=False,
            body=response.text,
        )
