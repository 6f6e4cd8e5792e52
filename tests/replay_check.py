"""Rebuild every service's read models from the topics and compare them with the live ones:
the check the replay tests share (integration and end to end)."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from ops.replay import SERVICES, compare, consumer_lag, replay
from services.common.store import Document


async def replay_problems(
    bootstrap: str,
    topic_prefix: str,
    db: AsyncDatabase[Document],
    suffix: str,
    *,
    poison_expected: bool = False,
) -> dict[str, list[str]]:
    """Per service whose rebuild into ``<name>_<suffix>`` is not the live state, what is
    wrong: events that failed, records that are no valid event (unless ``poison_expected``:
    live dead-lettered them too), nothing applied at all, offsets where live and replay
    disagree, and every differing field. Empty when all are equal. Every service is checked
    before the caller asserts, so a failure reports all of them."""
    problems: dict[str, list[str]] = {}
    for spec in SERVICES.values():
        result = await replay(
            spec, bootstrap=bootstrap, topic_prefix=topic_prefix, db=db, suffix=suffix
        )
        found = [f"failed: {failure}" for failure in result.failed]
        if not poison_expected:
            found += [f"invalid: {record}" for record in result.invalid]
        if result.applied == 0:
            found.append("nothing applied")
        lags = await consumer_lag(spec, bootstrap, topic_prefix, result.ranges)
        found += [f"live and replay read different offsets: {lag}" for lag in lags]
        found += [
            # In full: a list that differs in length is one difference, and CI's log is all
            # there is to read when this fails once in a while.
            f"{d.collection}  {d.document_id}  {d.field}: live={d.live!r}  rebuilt={d.rebuilt!r}"
            for d in await compare(spec, db, suffix)
        ]
        if found:
            problems[spec.name] = found
    return problems
