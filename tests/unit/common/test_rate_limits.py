"""Token buckets for tenants and for public routes (issue 16 item 6)."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from services.common.http import ProblemError, PublicRateLimits, RateLimiter


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def request_from(address: str) -> Request:
    return Request({"type": "http", "headers": [], "client": (address, 40000)})


def test_a_bucket_refills_at_its_rate() -> None:
    clock = Ticks()
    limiter = RateLimiter(2.0, 3, clock)
    for _ in range(3):
        limiter.check("acme")
    with pytest.raises(ProblemError) as limited:
        limiter.check("acme")
    assert (limited.value.status, limited.value.headers["Retry-After"]) == (429, "1")
    clock.now = 0.5
    limiter.check("acme")
    limiter.check("globex")


def test_made_up_keys_cannot_grow_the_buckets_without_bound() -> None:
    clock = Ticks()
    limiter = RateLimiter(1.0, 5, clock, max_keys=100)
    for n in range(1000):
        clock.now = n / 100
        limiter.check(f"address-{n}")
        assert len(limiter) <= 100
    # a key limited a moment ago is remembered: forgetting it would hand it a full bucket
    for _ in range(5):
        limiter.check("busy")
    limiter.check("one-more-key")
    with pytest.raises(ProblemError):
        limiter.check("busy")


def test_public_routes_are_limited_per_link_and_per_client() -> None:
    clock = Ticks()
    limits = PublicRateLimits(RateLimiter(1.0, 4, clock), RateLimiter(1.0, 2, clock))
    limits.check(request_from("198.51.100.1"), "link-a")
    limits.check(request_from("198.51.100.2"), "link-a")
    with pytest.raises(ProblemError) as per_link:
        limits.check(request_from("198.51.100.3"), "link-a")
    assert "one link" in (per_link.value.detail or "")
    for link in ("link-b", "link-c", "link-d"):
        limits.check(request_from("198.51.100.1"), link)
    with pytest.raises(ProblemError) as per_client:
        limits.check(request_from("198.51.100.1"), "link-e")
    assert "per client" in (per_client.value.detail or "")
    assert "link-" not in (per_client.value.detail or "") + (per_link.value.detail or "")
