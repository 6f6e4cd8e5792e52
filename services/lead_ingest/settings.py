"""lead-ingest's own settings, on top of the common ones."""

from __future__ import annotations

import hashlib
import hmac

from pydantic import Field, SecretStr, field_validator

from services.common.export_package import EXPORT_SERVICES
from services.common.settings import CommonSettings, decode_key

__all__ = ["IngestSettings"]


class IngestSettings(CommonSettings):
    blind_index_key: SecretStr = Field(
        description="base64 of 32 random bytes: keys the HMAC blind index that links a person's "
        "records (R5) without storing their e-mail or phone in clear"
    )
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=10 * 1024 * 1024)
    rate_limit_per_s: float = Field(default=200.0, gt=0)
    rate_limit_burst: int = Field(default=400, ge=1)
    publish_timeout_s: float = Field(default=10.0, gt=0, le=120)
    idempotency_takeover_s: float = Field(
        default=30.0,
        gt=0,
        description="a request still pending after this long (its process died) may be retried",
    )
    request_deadline_days: int = Field(default=30, ge=1, le=90, description="R22: one month")
    erasure_deadline_working_days: int = Field(default=10, ge=1, le=30, description="R25")

    export_parts: list[str] = Field(
        default_factory=lambda: list(EXPORT_SERVICES),
        description="services whose privacy.export_part completes an access/portability answer",
    )
    export_link_ttl_s: int = Field(
        default=24 * 3600,
        ge=60,
        le=30 * 24 * 3600,
        description="how long a signed export download link stays valid after it is shown",
    )
    export_link_key: SecretStr | None = Field(
        default=None,
        description="base64 of 32 random bytes: signs export download links; by default "
        "derived from the KEK (changing either invalidates links already handed out)",
    )

    @field_validator("blind_index_key")
    @classmethod
    def _is_a_key(cls, value: SecretStr) -> SecretStr:
        decode_key(value, "LEADTRAIL_BLIND_INDEX_KEY")
        return value

    @field_validator("export_link_key")
    @classmethod
    def _is_a_link_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_key(value, "LEADTRAIL_EXPORT_LINK_KEY")
        return value

    def export_link_bytes(self) -> bytes:
        if self.export_link_key is not None:
            return decode_key(self.export_link_key, "LEADTRAIL_EXPORT_LINK_KEY")
        return hmac.new(self.kek_bytes(), b"leadtrail/export-links/v1", hashlib.sha256).digest()

    def blind_index_bytes(self) -> bytes:
        return decode_key(self.blind_index_key, "LEADTRAIL_BLIND_INDEX_KEY")
