"""Small helpers shared by integration and end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 30.0, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something other than None; fail after ``within`` s."""
    try:
        async with asyncio.timeout(within):
            while True:
                value = await probe()
                if value is not None:
                    return value
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what} did not happen within {within}s") from None
