"""The TTL sweeper: a background task that takes expired templates out of serving.

Lookup already refuses an expired best match (miss reason ``expired``); the
sweeper disables expired templates every ``PLANCACHE_SWEEP_INTERVAL_S``
seconds so they leave the index, and logs ``template_expired`` for each with
actor ``sweeper``. An admin serves one again by updating it (a new version
renews its TTL) and approving it.
"""

from __future__ import annotations

import asyncio

import structlog

from plancache.cache import PlanCache
from plancache.logs import get_logger

__all__ = ["start_sweeper"]

log = get_logger("plancache.sweeper")


async def _sweep_forever(cache: PlanCache, interval_s: float) -> None:
    structlog.contextvars.bind_contextvars(actor="sweeper")
    while True:
        await asyncio.sleep(interval_s)
        try:
            swept = await asyncio.to_thread(cache.sweep_expired)
        except Exception:
            # A store outage must not end the sweeper; the next round retries.
            log.exception("sweep_failed")
            continue
        if swept:
            log.info("sweep_done", templates_disabled=len(swept))


def start_sweeper(cache: PlanCache, interval_s: float) -> asyncio.Task[None] | None:
    """Run the sweeper in the running loop; None when ``interval_s`` is 0 (off)."""
    if interval_s <= 0:
        return None
    return asyncio.create_task(_sweep_forever(cache, interval_s), name="ttl sweeper")
