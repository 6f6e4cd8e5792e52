"""structlog configured for JSON lines, with per-message context.

Every log line carries ``service``; while a message is handled, ``tenant_id``,
``correlation_id``, ``event_id`` and ``event_type`` are bound through contextvars
(:func:`message_context`), so one lead can be followed across services by its correlation id.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger", "message_context"]


def configure_logging(service: str, level: str = "info", fmt: str = "json") -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(message)s")


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


@contextmanager
def message_context(**values: str | None) -> Iterator[None]:
    """Bind ``values`` to every log line inside the block, then restore what was bound."""
    clean = {key: value for key, value in values.items() if value is not None}
    with structlog.contextvars.bound_contextvars(**clean):
        yield
