"""Tenants and their API keys, configured by an operator (``leadtrail tenants ...``).

The directory lives in ``<LEADTRAIL_CONFIG_DIR>/tenants.json``; services reload it when the file
changes, so adding a tenant or rotating a key needs no restart. Keys are stored only as SHA-256
hashes: a key is 256 random bits, so a plain hash is enough (no password stretching needed),
and a leaked file reveals no usable key. A key carries its tenant id in clear
(``lt_<tenant>_<secret>``) only to make logs and support easier; authentication never trusts it.

Per-tenant configuration files (scoring rules, purposes, retention, CRM connections) live beside
it in ``<config dir>/tenants/<tenant id>/``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = [
    "ApiKey",
    "Tenant",
    "TenantDirectory",
    "TenantError",
    "TenantFile",
    "hash_key",
    "tenant_config_dir",
]

TENANT_ID = r"^[a-z][a-z0-9-]{1,39}$"


class TenantError(ValueError):
    """A tenant command that can't be carried out (unknown tenant, duplicate, bad name)."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    created_at: AwareDatetime


class Tenant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(pattern=TENANT_ID)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    default_region: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    created_at: AwareDatetime
    api_keys: list[ApiKey] = Field(default_factory=list)


class TenantFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    tenants: dict[str, Tenant] = Field(default_factory=dict)


def tenant_config_dir(config_dir: Path, tenant_id: str) -> Path:
    return config_dir / "tenants" / tenant_id


def slug(name: str) -> str:
    text = re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-")
    return text[:40].rstrip("-") or "tenant"


class TenantDirectory:
    """Reads (and for the CLI, writes) ``tenants.json``; answers "whose key is this?"."""

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        self.path = config_dir / "tenants.json"
        self._loaded_mtime: float | None = None
        self._file = TenantFile()
        self._by_hash: dict[str, str] = {}

    # -- reading (services) ------------------------------------------------------------
    def _refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._file, self._by_hash, self._loaded_mtime = TenantFile(), {}, None
            return
        if mtime == self._loaded_mtime:
            return
        self._file = TenantFile.model_validate_json(self.path.read_text())
        self._by_hash = {
            key.sha256: tenant.id
            for tenant in self._file.tenants.values()
            for key in tenant.api_keys
        }
        self._loaded_mtime = mtime

    def authenticate(self, presented: str | None) -> Tenant | None:
        """The tenant owning ``presented``, or None. Constant-time on the hash comparison."""
        if not presented:
            return None
        self._refresh()
        digest = hash_key(presented)
        for known, tenant_id in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return self._file.tenants[tenant_id]
        return None

    def get(self, tenant_id: str) -> Tenant | None:
        self._refresh()
        return self._file.tenants.get(tenant_id)

    def all(self) -> list[Tenant]:
        self._refresh()
        return sorted(self._file.tenants.values(), key=lambda tenant: tenant.id)

    # -- writing (operator CLI) ---------------------------------------------------------
    @contextlib.contextmanager
    def _editing(self) -> Iterator[TenantFile]:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        with (self.config_dir / ".tenants.lock").open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            current = (
                TenantFile.model_validate_json(self.path.read_text())
                if self.path.exists()
                else TenantFile()
            )
            yield current
            temporary = self.path.with_suffix(".tmp")
            temporary.touch(mode=0o600)
            temporary.write_text(current.model_dump_json(indent=2) + "\n")
            temporary.replace(self.path)
        self._loaded_mtime = None

    @staticmethod
    def _new_key(tenant_id: str) -> tuple[str, ApiKey]:
        key = f"lt_{tenant_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(
            id=f"key-{secrets.token_hex(4)}", sha256=hash_key(key), created_at=datetime.now(UTC)
        )
        return key, record

    def add(
        self, name: str, *, tenant_id: str | None = None, default_region: str | None = None
    ) -> tuple[Tenant, str]:
        """Create a tenant; returns it with its first API key (shown once, never stored)."""
        tenant_id = tenant_id or slug(name)
        if not re.match(TENANT_ID, tenant_id):
            raise TenantError(
                f"tenant id {tenant_id!r} must be 2-40 lower-case letters, digits or dashes"
            )
        with self._editing() as current:
            if tenant_id in current.tenants:
                raise TenantError(f"tenant {tenant_id!r} already exists")
            key, record = self._new_key(tenant_id)
            tenant = Tenant(
                id=tenant_id,
                name=name,
                default_region=default_region,
                created_at=datetime.now(UTC),
                api_keys=[record],
            )
            current.tenants[tenant_id] = tenant
        return tenant, key

    def rotate_key(self, tenant_id: str, *, keep_old: bool = False) -> tuple[ApiKey, str]:
        """A new key for the tenant; old keys stop working unless ``keep_old``."""
        with self._editing() as current:
            tenant = current.tenants.get(tenant_id)
            if tenant is None:
                raise TenantError(f"no tenant {tenant_id!r}")
            key, record = self._new_key(tenant_id)
            tenant.api_keys = [*tenant.api_keys, record] if keep_old else [record]
        return record, key

    def to_json(self) -> str:
        self._refresh()
        return json.dumps(
            [
                {
                    "id": t.id,
                    "name": t.name,
                    "keys": len(t.api_keys),
                    "created_at": str(t.created_at),
                }
                for t in self.all()
            ]
        )
