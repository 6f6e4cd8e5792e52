"""The five Leadtrail services; each declares itself once in ``<package>/declaration.py``.

:func:`declarations` is the one list of them: the local stack, ``leadtrail replay``,
``export`` and ``audit``, the AsyncAPI documents and the contract tests read it. It imports
the declarations when called, not when ``services`` is imported, so a service's process loads
no other service's code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.common.declaration import ServiceDeclaration

__all__ = ["SERVICE_PACKAGES", "declaration_of", "declarations"]

SERVICE_PACKAGES = (
    "services.lead_ingest",
    "services.consent_ledger",
    "services.retention_scheduler",
    "services.erasure_propagator",
    "services.crm_sync",
)
"""In the order events flow: capture, consent, retention, erasure, CRM."""


def declarations() -> tuple[ServiceDeclaration[Any, Any], ...]:
    return tuple(
        importlib.import_module(f"{package}.declaration").DECLARATION
        for package in SERVICE_PACKAGES
    )


def declaration_of(name: str) -> ServiceDeclaration[Any, Any]:
    """The service called ``name`` (``lead-ingest``, ...); ``KeyError`` for no such service."""
    for declaration in declarations():
        if declaration.name == name:
            return declaration
    raise KeyError(name)
