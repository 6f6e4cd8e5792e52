"""The console's settings: the common ones (Kafka, the store, the KEK for decryption, the
config directory with the accounts) and its own."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings

__all__ = ["ConsoleSettings"]


class ConsoleSettings(CommonSettings):
    console_session_ttl_s: float = Field(
        default=8 * 3600,
        gt=0,
        le=7 * 86400,
        description="a session ends after this long without a request",
    )
    console_metrics_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="how often the console samples the services' /metrics for the System page",
    )
    console_request_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="deadline of one page's reads (store, Kafka, the services' /metrics)",
    )
    console_register_limit: int = Field(
        default=1000,
        ge=10,
        le=100_000,
        description="most requests the requests page lists (the CSV download has them all)",
    )
