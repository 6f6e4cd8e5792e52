"""structlog configured for JSON lines, with per-message context.

Every log line carries ``service``; while a Kafka record is handled, ``tenant_id``,
``correlation_id``, ``causation_id``, ``event_id`` and ``event_type`` are bound through
contextvars (:func:`message_context`), and while an HTTP request is served its
``correlation_id`` is (see :class:`services.common.observability.RequestObservability`). Events
carry the correlation id of the request that started them, so one lead can be followed across
services by that one id.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import structlog
import uuid_utils

__all__ = [
    "CORRELATION_ID_PATTERN",
    "configure_logging",
    "current_correlation_id",
    "get_logger",
    "message_context",
    "valid_correlation_id",
]

CORRELATION_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
"""What a caller may send as ``X-Correlation-ID``: at most 64 characters (the envelope's limit),
letters, digits and ``._:-`` (UUIDs, ULIDs and most tracing ids fit; nothing that could
forge a log field)."""


_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def configure_logging(service: str, level: str = "info", fmt: str = "json") -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, _TRACEBACKS, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    _route_standard_logging(shared, renderer)
    sys.excepthook = _log_uncaught


class _StructlogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler that renders standard-library records like structlog's own lines."""


def _route_standard_logging(shared: list[Any], renderer: Any) -> None:
    """Records of the ``logging`` module (uvicorn, asyncio, aiokafka, warnings) through the same
    processors: one JSON line each, the traceback as a structured ``exception`` field."""
    handler = _StructlogHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _TRACEBACKS,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StructlogHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.captureWarnings(True)


def _log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    structlog.get_logger("uncaught").critical(
        "uncaught exception", exc_info=(kind, error, traceback)
    )


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


@contextmanager
def message_context(**values: str | None) -> Iterator[None]:
    """Bind ``values`` to every log line inside the block, then restore what was bound.

    Runs once per handled event and per HTTP request, so it resets the context variables with
    their tokens instead of using ``bound_contextvars`` (which copies the whole context)."""
    tokens = structlog.contextvars.bind_contextvars(
        **{key: value for key, value in values.items() if value is not None}
    )
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def valid_correlation_id(value: str | None) -> bool:
    return value is not None and CORRELATION_ID_PATTERN.fullmatch(value) is not None


def current_correlation_id() -> str:
    """The correlation id bound to this request or message, or a fresh UUIDv7 outside one."""
    bound = structlog.contextvars.get_contextvars().get("correlation_id")
    return bound if isinstance(bound, str) else str(uuid_utils.uuid7())
