"""Finished jobs expire: a job that succeeded, failed or was cancelled more than ``job_ttl``
seconds ago goes with its transcripts, verdicts and Idempotency-Key (``JobStore.prune``), so a
store that takes jobs for months stays the size of its recent work. The verdict cache is another
store and keeps every judge call paid for. ``judge serve`` and ``judge worker`` prune every few
minutes when ``JUDGE_JOB_TTL`` is set; ``judge jobs prune`` does it once. An intake whose
process died (a job never committed) is removed once silent for ``INTAKE_SILENCE`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time

from judge.config import Settings
from judge.jobs.redis_store import RedisJobStore
from judge.jobs.sqlite_store import SqliteJobStore
from judge.jobs.store import JobStore

logger = logging.getLogger(__name__)

INTAKE_SILENCE = 3600.0
"""Seconds without a stored batch after which an intake counts as abandoned."""


def job_store(settings: Settings) -> JobStore:
    """The job store these settings name: Redis (``queue_url``) or SQLite under ``state_dir``."""
    if settings.queue_url is not None:
        return RedisJobStore(settings.queue_url)
    return SqliteJobStore(settings.state_dir / "jobs.sqlite3")


def prune(store: JobStore, older_than: float, now: float | None = None) -> int:
    """Remove the jobs that finished more than ``older_than`` seconds ago (and abandoned
    intakes); how many jobs went."""
    now = time.time() if now is None else now
    return store.prune(now - older_than, intakes_before=now - INTAKE_SILENCE)


def interval(ttl: float) -> float:
    """How often to prune for this retention: a quarter of it, between 1 s and 10 minutes."""
    return min(max(ttl / 4, 1.0), 600.0)


async def prune_forever(store: JobStore, ttl: float) -> None:
    """Prune every ``interval(ttl)`` seconds until cancelled; a store that is down is tried
    again at the next round."""
    while True:
        try:
            removed = await asyncio.to_thread(prune, store, ttl)
            if removed:
                logger.info("removed %d jobs finished more than %s s ago", removed, ttl)
        except store.outages:
            logger.exception("could not prune the job store; trying again")
        await asyncio.sleep(interval(ttl))
