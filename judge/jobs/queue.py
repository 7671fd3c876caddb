"""The job queue of a scaled-out deployment (``queue_url`` set): the API only enqueues the job's
id on a saq queue in Redis (``QueueDispatch``) and ``judge worker`` processes take it
(``run_worker``). saq gives what a long job needs:
no run-time limit, a heartbeat, and a sweep that re-enqueues the job of a worker that stopped
beating, where the next worker resumes it. A worker also lends its spare capacity: it polls the
job store for free parts of jobs that other workers have started (``JobRunner.run_forever`` with
``helping``), so two workers grade one large job together (the parts' leases keep any part to
one runner at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import weakref

from prometheus_client import start_http_server
from redis.exceptions import RedisError
from saq import Queue, Worker
from saq.types import Context, PartialTimersDict

from judge.cache import CallCache
from judge.config import Settings
from judge.errors import NotFoundError
from judge.heap import collect_seldom, freeze_long_lived
from judge.jobs.redis_store import RedisJobStore
from judge.jobs.retention import prune_forever
from judge.jobs.runner import JobRunner
from judge.metrics import Metrics
from judge.selection import GraderPool

logger = logging.getLogger(__name__)


class WorkerContext(Context, total=False):
    """What a worker's tasks share: its runner, and what to close when it stops."""

    runner: JobRunner
    pruning: asyncio.Task[None]
    helping: asyncio.Task[None]
    pool: GraderPool
    cache: CallCache
    store: RedisJobStore


QUEUE_NAME = "judge-jobs"
RELISTEN_SECONDS = 5.0
"""How long streams poll alone after the progress channel is lost, before it is tried again."""
GRADE_JOB = "grade_job"


class QueueDispatch:
    """Jobs go on the Redis queue; workers elsewhere grade them. Streams learn of progress from
    the job store's channel (``RedisJobStore.progress_channel``), and poll besides, in case a
    message is lost (pub/sub delivers at most once)."""

    poll_seconds = 0.25

    def __init__(self, settings: Settings, progress_channel: str):
        assert settings.queue_url is not None
        self.settings = settings
        self.queue = Queue.from_url(settings.queue_url, name=QUEUE_NAME)
        self.progress_channel = progress_channel
        self._progress: weakref.WeakValueDictionary[str, asyncio.Event] = (
            weakref.WeakValueDictionary()
        )
        """Each streamed job's event, while a stream waits on it."""
        self._listener: asyncio.Task[None] | None = None
        self._lost_at = -math.inf

    async def submitted(self, job_id: str) -> None:
        """Enqueue (again: the queue keeps one entry per job id, so a replayed submission whose
        first enqueue was lost is delivered, and one that was not is not delivered twice)."""
        await self.queue.enqueue(
            GRADE_JOB,
            key=job_id,
            job_id=job_id,
            timeout=0,
            heartbeat=self.settings.job_heartbeat_seconds,
            retries=1000,  # a job fails in the job store, never here: retries are for outages
            retry_delay=1.0,
        )

    def progress(self, job_id: str) -> asyncio.Event:
        """An event set by the job's next message on the progress channel (listened to from
        the first stream on; after the channel is lost, streams poll for a while before it is
        tried again)."""
        idle = self._listener is None or self._listener.done()
        if idle and time.monotonic() - self._lost_at > RELISTEN_SECONDS:
            self._listener = asyncio.create_task(self._listen(), name="job-progress")
        event = self._progress.get(job_id)
        if event is None:
            event = self._progress[job_id] = asyncio.Event()
        return event

    async def _listen(self) -> None:
        import redis.asyncio

        assert self.settings.queue_url is not None
        client = redis.asyncio.Redis.from_url(self.settings.queue_url, health_check_interval=30)
        try:
            async with client.pubsub(ignore_subscribe_messages=True) as channel:
                await channel.subscribe(self.progress_channel)
                async for message in channel.listen():
                    job_id = message["data"].decode()
                    event = self._progress.pop(job_id, None)
                    if event is not None:  # a stream waits on it: wake it
                        event.set()
        except Exception as exc:  # streams go on polling meanwhile
            self._lost_at = time.monotonic()
            logger.warning("lost the job progress channel: %s", exc)
        finally:
            await client.aclose()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        try:
            await self.queue.disconnect()
        except RedisError as exc:  # Redis went away first: nothing left to release
            logger.warning("could not disconnect from the job queue: %s", exc)


async def run_worker(settings: Settings) -> None:
    """Take jobs from the queue and grade them until SIGINT or SIGTERM."""
    assert settings.queue_url is not None, "the CLI checks that a queue is configured"
    queue_url = settings.queue_url
    queue = Queue.from_url(queue_url, name=QUEUE_NAME)

    async def startup(ctx: WorkerContext) -> None:
        library = settings.rubric_library()
        cache = settings.open_cache()
        store = RedisJobStore(queue_url)
        metrics = Metrics()
        pool = GraderPool(settings, cache, on_verdict=metrics.observe_verdict)
        if settings.worker_metrics_port is not None:
            start_http_server(settings.worker_metrics_port, registry=metrics.registry)
        ctx["cache"], ctx["store"], ctx["pool"] = cache, store, pool
        ctx["runner"] = JobRunner(store, pool, library, lease_seconds=settings.job_lease_seconds)
        if settings.job_ttl is not None:
            ctx["pruning"] = asyncio.create_task(prune_forever(store, settings.job_ttl))
        # spare capacity goes to parts of jobs that other workers hold: one job, many workers
        ctx["helping"] = asyncio.create_task(
            ctx["runner"].run_forever(store, poll_seconds=0.5, helping=True)
        )
        freeze_long_lived()
        collect_seldom()
        logger.info("worker ready: %d rubrics, cache %s", len(library), type(cache).__name__)

    async def shutdown(ctx: WorkerContext) -> None:
        for task in (ctx.get("pruning"), ctx.get("helping")):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        ctx["store"].close()
        await ctx["pool"].aclose()
        await ctx["cache"].close()

    worker = Worker(
        queue,
        functions=[(GRADE_JOB, grade_job)],
        concurrency=settings.worker_jobs,
        startup=startup,
        shutdown=shutdown,
        # saq's PartialTimersDict inherits required keys (a typing slip): all are optional
        timers=PartialTimersDict(sweep=settings.job_heartbeat_seconds),  # type: ignore[typeddict-item]
        shutdown_grace_period_s=0,
    )
    await worker.start()


async def grade_job(ctx: WorkerContext, *, job_id: str) -> str:
    """The queue's task: grade one job to its end, beating the heartbeat meanwhile."""
    runner = ctx["runner"]
    job = ctx["job"]
    interval = max(job.heartbeat / 3, 0.5) if job.heartbeat else None

    async def beat() -> None:
        while interval is not None:
            await asyncio.sleep(interval)
            await job.update()

    beating = asyncio.create_task(beat())
    try:
        return await runner.run_job(job_id)
    except NotFoundError:  # deleted, or gone from Redis (flushed, expired): nothing to grade
        logger.info("queued job %s is not in the job store; dropped", job_id)
        return "missing"
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
