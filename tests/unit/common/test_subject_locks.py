"""One subject's work runs one at a time within a process; other subjects' does not wait."""

from __future__ import annotations

import asyncio

from services.common.locks import SubjectLocks


async def test_one_subject_at_a_time_others_in_parallel_and_nothing_kept() -> None:
    locks = SubjectLocks()
    inside: dict[str, int] = {"maria": 0, "luca": 0}
    most: dict[str, int] = {"maria": 0, "luca": 0}
    both_at_once = asyncio.Event()

    async def work(subject: str) -> None:
        async with locks.hold("acme", subject):
            inside[subject] += 1
            most[subject] = max(most[subject], inside[subject])
            if inside["maria"] and inside["luca"]:
                both_at_once.set()
            await asyncio.sleep(0.01)
            inside[subject] -= 1

    await asyncio.gather(*(work(s) for s in ["maria", "luca"] * 5))
    assert most == {"maria": 1, "luca": 1}, "never two writers of one subject"
    assert both_at_once.is_set(), "two subjects did not wait for each other"
    assert len(locks) == 0, "locks of idle subjects are forgotten"


async def test_a_failure_inside_releases_the_subject() -> None:
    locks = SubjectLocks()
    try:
        async with locks.hold("acme", "maria"):
            raise RuntimeError("handler failed")
    except RuntimeError:
        pass
    async with asyncio.timeout(1):
        async with locks.hold("acme", "maria"):
            pass
    assert len(locks) == 0
