"""Composition of the retention-scheduler service."""

from __future__ import annotations

from services.common.runtime import ServiceSpec

__all__ = ["SERVICE_NAME", "build_spec"]

SERVICE_NAME = "retention-scheduler"


def build_spec() -> ServiceSpec:
    return ServiceSpec(name=SERVICE_NAME)
