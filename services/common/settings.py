"""Settings every service reads from the environment (prefix ``LEADTRAIL_``).

``make up`` writes the values for a local stack into ``.run/stack.env``; docker-compose and the
Kubernetes manifests set the same names.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.integrity import derive_integrity_key

__all__ = ["CommonSettings", "decode_key", "integrity_key_bytes"]


def decode_key(value: SecretStr, name: str) -> bytes:
    """A 32-byte key from its base64 text; a clear error names the setting when it is wrong."""
    try:
        raw = base64.b64decode(value.get_secret_value(), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"{name} must be base64 of 32 random bytes") from error
    if len(raw) != 32:
        raise ValueError(f"{name} must decode to 32 bytes, got {len(raw)}")
    return raw


def integrity_key_bytes(integrity_key: SecretStr | None, kek: SecretStr | None) -> bytes:
    """The key sealing events: ``LEADTRAIL_INTEGRITY_KEY``, else one derived from the KEK."""
    if integrity_key is not None:
        return decode_key(integrity_key, "LEADTRAIL_INTEGRITY_KEY")
    if kek is None:
        raise ValueError("set LEADTRAIL_INTEGRITY_KEY (or LEADTRAIL_KEK, which it derives from)")
    return derive_integrity_key(decode_key(kek, "LEADTRAIL_KEK"))


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADTRAIL_", extra="ignore")

    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", description="host:port[,host:port] of the Kafka brokers"
    )
    mongo_url: str = Field(default="mongodb://127.0.0.1:27017/")
    mongo_db: str = Field(default="leadtrail", pattern=r"^[A-Za-z0-9_-]{1,48}$")
    store_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="deadline of every store operation, connecting included (PyMongo "
        "timeoutMS); past it an API request answers 503 store-unavailable and a consumer "
        "retries the record without committing it",
    )
    retry_after_s: int = Field(
        default=5,
        ge=1,
        le=3600,
        description="the Retry-After a 503 names when the store or Kafka does not answer",
    )
    shutdown_grace_s: float = Field(
        default=15.0,
        gt=0,
        le=300,
        description="on SIGTERM, how long records being handled and background rounds in "
        "progress may take to finish before they are cancelled; the Kafka clients then get "
        "as long again to close",
    )
    topic_prefix: str = Field(default="leadtrail.", pattern=r"^[A-Za-z0-9._-]{0,100}$")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port")
    http_keep_alive_s: int = Field(
        default=65,
        ge=1,
        le=3600,
        description="how long an idle HTTP connection stays open: longer than the idle timeouts "
        "of clients and load balancers (httpx and requests keep 5 s, AWS ALB 60 s), so that a "
        "client never reuses a connection at the moment the service closes it (uvicorn's "
        "default, 5 s, raced httpx's: a request got a connection reset)",
    )
    public_url: str | None = Field(
        default=None,
        description="where this service's API is reached from outside, e.g. "
        "https://leads.example.com: every link it hands out (export downloads, unsubscribe "
        "links) starts with it, never with the request's Host header; unset, the listener's "
        "own http://host:port (right for a local stack only)",
    )
    public_rate_limit_per_s: float = Field(
        default=5.0,
        gt=0,
        description="public routes (signed links, no API key): requests/s per client address",
    )
    public_rate_limit_burst: int = Field(default=60, ge=1)
    link_rate_limit_per_s: float = Field(
        default=0.1, gt=0, description="public routes: requests/s per link, after its burst"
    )
    link_rate_limit_burst: int = Field(default=10, ge=1)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    kek: SecretStr = Field(
        description="Key-encryption key: base64 of 32 random bytes; wraps subjects' data keys"
    )
    kek_id: str = Field(default="kek-1", min_length=1, max_length=64)
    integrity_key: SecretStr | None = Field(
        default=None,
        description="HMAC key sealing every event (docs/integrity.md): base64 of 32 random "
        "bytes; unset, it is derived from the KEK (set it so auditors need not hold the KEK)",
    )
    config_dir: Path = Field(
        default=Path(".run/config"),
        description="operator configuration: tenants.json and tenants/<id>/*.yaml",
    )
    handler_max_attempts: int = Field(
        default=5, ge=1, le=100, description="attempts before a message goes to dead letters"
    )
    handler_retry_backoff_s: float = Field(default=0.2, ge=0, le=60)
    data_key_cache_s: float = Field(
        default=30.0,
        ge=0,
        le=300,
        description="how long a process keeps a subject's unwrapped data key; a service drops "
        "it as soon as it handles the subject's erasure.requested, this bounds the rest",
    )
    consumer_batch_max_records: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="most records a consumer handles as one batch (one offset commit each)",
    )
    consumer_batch_wait_ms: int = Field(
        default=500,
        ge=1,
        le=5_000,
        description="how long an idle consumer's poll waits for records before it polls again; "
        "records are handed over the moment they arrive, so a longer wait adds no latency, "
        "it only wakes an idle consumer less often (services/common/prompt_batches.py)",
    )
    consumer_batch_linger_ms: int = Field(
        default=10,
        ge=0,
        le=1_000,
        description="once records arrive, how long a consumer waits for more before it handles "
        "them as one batch: fewer store round trips per event under load, at most this much "
        "latency per hop (0: hand them over at once)",
    )
    unavailable_backoff_max_s: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="longest pause between retries of a record while the store or Kafka does "
        "not answer (such retries never dead-letter the record)",
    )
    test_clock_offset_file: Path | None = Field(
        default=None,
        description="TEST ONLY: a file holding seconds to add to the system time (see "
        "OffsetFileClock); refused unless enable_test_clock is true",
    )
    enable_test_clock: bool = Field(
        default=False, description="TEST ONLY: allow test_clock_offset_file (never in production)"
    )

    @model_validator(mode="after")
    def _test_clock_needs_consent(self) -> CommonSettings:
        if self.test_clock_offset_file is not None and not self.enable_test_clock:
            raise ValueError(
                "LEADTRAIL_TEST_CLOCK_OFFSET_FILE is for tests only; "
                "set LEADTRAIL_ENABLE_TEST_CLOCK=true as well to use it"
            )
        return self

    @field_validator("public_url")
    @classmethod
    def _public_url_is_a_base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise ValueError(
                "LEADTRAIL_PUBLIC_URL must be an http(s) URL without credentials, query or "
                "fragment, e.g. https://leads.example.com"
            )
        return value.rstrip("/")

    @field_validator("kek")
    @classmethod
    def _kek_is_a_key(cls, value: SecretStr) -> SecretStr:
        decode_key(value, "LEADTRAIL_KEK")
        return value

    @field_validator("integrity_key")
    @classmethod
    def _integrity_key_is_a_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_key(value, "LEADTRAIL_INTEGRITY_KEY")
        return value

    def kek_bytes(self) -> bytes:
        return decode_key(self.kek, "LEADTRAIL_KEK")

    def integrity_key_bytes(self) -> bytes:
        return integrity_key_bytes(self.integrity_key, self.kek)

    def public_base_url(self) -> str:
        """The base of the links this service hands out: ``public_url``, else the listener."""
        if self.public_url is not None:
            return self.public_url
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(  # noqa: S104
            self.http_host, self.http_host
        )
        return f"http://{f'[{host}]' if ':' in host else host}:{self.http_port}"

    def topic(self, logical_name: str) -> str:
        return f"{self.topic_prefix}{logical_name}"
