"""Composition of the crm-sync service."""

from __future__ import annotations

from services.common.runtime import ServiceSpec
from services.common.settings import CommonSettings

__all__ = ["SERVICE_NAME", "SETTINGS_CLASS", "build_spec"]

SERVICE_NAME = "crm-sync"
SETTINGS_CLASS = CommonSettings


def build_spec(settings: CommonSettings) -> ServiceSpec:
    return ServiceSpec(name=SERVICE_NAME)
