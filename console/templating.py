"""The console's Jinja2 templates (autoescaped) and the filters they use."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates

__all__ = ["templates"]

templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))


def when(value: Any) -> str:
    """A time as ``2026-12-06 05:40 UTC``; an empty cell for none."""
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    return value.strftime("%Y-%m-%d %H:%M UTC")


ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def shown(value: Any) -> str:
    """A record's value in a table cell: lists joined, nested objects compact, times (also
    ISO strings, as export records hold them) as :func:`when` writes them."""
    if value is None:
        return ""
    if isinstance(value, str) and ISO_TIME.match(value):
        try:
            return when(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return value
    if isinstance(value, list):
        return ", ".join(shown(item) for item in value)
    if isinstance(value, dict):
        return "; ".join(f"{key}: {shown(item)}" for key, item in value.items())
    return when(value) if isinstance(value, datetime) else str(value)


templates.env.filters["when"] = when
templates.env.filters["shown"] = shown
