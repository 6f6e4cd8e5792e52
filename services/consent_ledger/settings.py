"""consent-ledger's settings."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from services.common.settings import CommonSettings, decode_key

__all__ = ["ConsentSettings"]


class ConsentSettings(CommonSettings):
    unsubscribe_key: SecretStr = Field(
        description="base64 of 32 random bytes: signs the one-click unsubscribe tokens"
    )
    unsubscribe_ttl_days: int = Field(default=180, ge=1, le=3650)

    @field_validator("unsubscribe_key")
    @classmethod
    def _is_a_key(cls, value: SecretStr) -> SecretStr:
        decode_key(value, "LEADTRAIL_UNSUBSCRIBE_KEY")
        return value

    def unsubscribe_key_bytes(self) -> bytes:
        return decode_key(self.unsubscribe_key, "LEADTRAIL_UNSUBSCRIBE_KEY")
