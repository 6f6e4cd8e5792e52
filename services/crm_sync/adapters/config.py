"""Configuration of one CRM connection, as an operator writes it in a tenant's config files.

The secret (API token, access token or webhook signing secret) is never part of the config:
``secret_env`` names an environment variable or ``secret_file`` a file (a mounted Kubernetes
secret, say) that holds it. It is read only when an adapter first needs it, and again after the
CRM answered 401, so a rotated token is picked up without a restart. Neither the config nor the
resolved :class:`~pydantic.SecretStr` ever shows the value in ``repr`` or ``str``.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["DEFAULT_BASE_URLS", "ConnectionConfig", "CrmKind", "SecretUnavailableError"]

CrmKind = Literal["hubspot", "salesforce", "pipedrive", "webhook"]

DEFAULT_BASE_URLS: dict[str, str] = {
    "hubspot": "https://api.hubapi.com",
    "pipedrive": "https://api.pipedrive.com",
}

# Options that belong to one kind; setting one on another kind is a configuration mistake.
_VENDOR_OPTIONS: dict[str, frozenset[str]] = {
    "hubspot": frozenset({"gdpr_delete"}),
    "salesforce": frozenset({"instance_url", "api_version", "external_id_field"}),
    "pipedrive": frozenset({"create_lead", "pipedrive_auth"}),
    "webhook": frozenset({"url"}),
}


class SecretUnavailableError(RuntimeError):
    """The connection's secret could not be read; the message names where it was looked for."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(value: str | None) -> str | None:
    """HTTPS, or plain HTTP to a loopback address only (local fakes and sidecars)."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError("must use https (plain http is allowed to loopback addresses only)")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials; use secret_env or secret_file")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return value


class ConnectionConfig(BaseModel):
    """One tenant's connection to one CRM (or webhook receiver)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    kind: CrmKind
    base_url: str | None = Field(
        default=None,
        description="API root; defaults to the vendor's (Salesforce: instance_url). For tests, "
        "proxies and sandboxes.",
    )
    secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    secret_file: Path | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    # HubSpot
    gdpr_delete: bool = Field(
        default=False,
        description="erase with POST .../contacts/gdpr-delete (permanent) instead of archiving",
    )
    # Salesforce
    instance_url: str | None = Field(
        default=None, description="the org's My Domain URL, e.g. https://acme.my.salesforce.com"
    )
    api_version: str = Field(default="v60.0", pattern=r"^v\d{2,3}\.0$")
    external_id_field: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z][A-Za-z0-9_]{0,36}__c$",
        description="an External ID field on Lead holding the lead id; makes creates idempotent",
    )
    # Pipedrive
    create_lead: bool = Field(default=False, description="also add a lead linked to the person")
    pipedrive_auth: Literal["api_token", "x-api-token", "bearer"] = Field(
        default="api_token",
        description="api_token: ?api_token= query parameter; x-api-token: the same token in a "
        "header; bearer: an OAuth access token",
    )
    # Webhook
    url: str | None = Field(default=None, description="receiver URL (webhook kind only)")

    @field_validator("base_url", "instance_url", "url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _check_url(value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.secret_env is None) == (self.secret_file is None):
            raise ValueError("give exactly one of secret_env and secret_file")
        foreign = {
            name
            for kind, names in _VENDOR_OPTIONS.items()
            if kind != self.kind
            for name in names
            if name in self.model_fields_set
        }
        if foreign:
            raise ValueError(f"options {sorted(foreign)} do not apply to kind {self.kind!r}")
        if self.kind == "salesforce" and self.instance_url is None and self.base_url is None:
            raise ValueError("salesforce needs instance_url (or base_url)")
        if self.kind == "webhook":
            if self.url is None:
                raise ValueError("webhook needs url")
            if self.base_url is not None:
                raise ValueError("webhook takes url, not base_url")
        return self

    @property
    def api_root(self) -> str:
        """Where requests go: ``base_url``, else the vendor default (webhook: ``url`` as given;
        API roots lose a trailing slash, since paths are appended to them)."""
        if self.url is not None:
            return self.url
        root = self.base_url or self.instance_url or DEFAULT_BASE_URLS.get(self.kind)
        assert root is not None  # noqa: S101 (the validator guarantees one for every kind)
        return root.rstrip("/")

    def resolve_secret(self) -> SecretStr:
        """Read the secret now, from the environment or the file; surrounding blanks dropped."""
        if self.secret_env is not None:
            value = os.environ.get(self.secret_env)
            if value is None or not value.strip():
                raise SecretUnavailableError(
                    f"connection {self.id}: environment variable {self.secret_env} is not set"
                )
            return SecretStr(value.strip())
        assert self.secret_file is not None  # noqa: S101 (the validator guarantees one)
        try:
            value = self.secret_file.read_text(encoding="utf-8")
        except OSError as error:
            raise SecretUnavailableError(
                f"connection {self.id}: cannot read secret file {self.secret_file} "
                f"({error.strerror or type(error).__name__})"
            ) from None
        if not value.strip():
            raise SecretUnavailableError(
                f"connection {self.id}: secret file {self.secret_file} is empty"
            )
        return SecretStr(value.strip())
