"""Composition of the crm-sync service."""

from __future__ import annotations

from services.common.runtime import ServiceSpec

__all__ = ["SERVICE_NAME", "build_spec"]

SERVICE_NAME = "crm-sync"


def build_spec() -> ServiceSpec:
    return ServiceSpec(name=SERVICE_NAME)
