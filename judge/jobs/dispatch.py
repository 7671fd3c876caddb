"""How a submitted job reaches a runner, and how a verdict stream learns of progress.

On a single server the app's own runner polls the SQLite store (``LocalDispatch``). Scaled out,
the API enqueues the job on a Redis queue for ``judge worker`` processes (``QueueDispatch`` in
``judge.jobs.queue``).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from judge.jobs.runner import JobRunner


class JobDispatch(Protocol):
    """Hands submitted jobs to runners and tells streams when verdicts may have arrived."""

    poll_seconds: float

    async def submitted(self, job_id: str) -> None: ...

    def progress(self, job_id: str) -> asyncio.Event:
        """An event set at the job's next progress (or any job's; streams also poll)."""
        ...

    async def close(self) -> None: ...


class LocalDispatch:
    """The server's own runner grades every job."""

    poll_seconds = 1.0

    def __init__(self, runner: JobRunner):
        self.runner = runner

    async def submitted(self, job_id: str) -> None:
        self.runner.wake()

    def progress(self, job_id: str) -> asyncio.Event:
        return self.runner.progress

    async def close(self) -> None:
        pass
