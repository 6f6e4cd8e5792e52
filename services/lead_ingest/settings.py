"""lead-ingest's own settings, on top of the common ones."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

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

    @field_validator("blind_index_key")
    @classmethod
    def _is_a_key(cls, value: SecretStr) -> SecretStr:
        decode_key(value, "LEADTRAIL_BLIND_INDEX_KEY")
        return value

    def blind_index_bytes(self) -> bytes:
        return decode_key(self.blind_index_key, "LEADTRAIL_BLIND_INDEX_KEY")
