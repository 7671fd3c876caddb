"""The two clients, thin over the shared protocol (``judge.client.calls``, ``judge.client.resume``):
each sends calls, opens streams, and runs the loops of ``verdicts`` and ``wait``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from tenacity import AsyncRetrying, Retrying

import judge.client.calls as calls
from judge.cache import CachePolicy
from judge.client.calls import Call, JudgeLike, TranscriptLike
from judge.client.errors import checked
from judge.client.resume import Cursor, Outage, poll_wait, retry_policy
from judge.estimate import Estimate
from judge.jobs.store import TERMINAL
from judge.verdict import Verdict
from judge.wire import (
    GradePublic,
    JobPublic,
    JudgesPublic,
    ReportPublic,
    RubricPublic,
    RubricSummary,
)

T = TypeVar("T")


class Client:
    """The judge service over HTTP, synchronously. Use it as a context manager, or ``close()``.

    ``base_url`` defaults to ``JUDGE_URL`` (else http://127.0.0.1:8000), ``api_key`` to
    ``JUDGE_API_KEY``. ``timeout`` bounds each request's connect/read/write; ``max_wait`` bounds
    how long the client waits for a service that is down or busy before it raises
    ``JudgeUnavailableError``. ``transport`` replaces the network (``httpx.MockTransport``).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_wait: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url, headers = calls.connection(base_url, api_key)
        self.max_wait = max_wait
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def grade(
        self,
        transcripts: Iterable[TranscriptLike],
        rubrics: str | Sequence[str],
        *,
        judge: JudgeLike = None,
        cache: CachePolicy | str = CachePolicy.USE,
        max_cost_usd: float | None = None,
    ) -> GradePublic:
        """Grade a small batch (up to the server's ``max_sync_pairs``) and wait for it; with
        ``max_cost_usd``, calls past that spend get ``error(budget)``."""
        body = calls.batch(transcripts, rubrics, judge, cache, max_cost_usd)
        return self._call(calls.grade(body))

    def submit(
        self,
        transcripts: Iterable[TranscriptLike],
        rubrics: str | Sequence[str],
        *,
        judge: JudgeLike = None,
        cache: CachePolicy | str = CachePolicy.USE,
        idempotency_key: str | None = None,
        max_cost_usd: float | None = None,
    ) -> JobPublic:
        """Queue a batch of any size as a job. The same content (or key) gives the same job.
        With ``max_cost_usd`` the job stops paying there (the rest get ``error(budget)``)."""
        batch = calls.batch(transcripts, rubrics, judge, cache, max_cost_usd)
        return self._call(calls.submit(batch, idempotency_key))

    def estimate(
        self,
        transcripts: Iterable[TranscriptLike],
        rubrics: str | Sequence[str],
        *,
        judge: JudgeLike = None,
        cache: CachePolicy | str = CachePolicy.USE,
    ) -> Estimate:
        """What submitting this batch would take, without a job or a judge call: pairs, cache
        hits, calls to make, estimated tokens and cost per model."""
        return self._call(calls.estimate(calls.batch(transcripts, rubrics, judge, cache)))

    def verdicts(self, job_id: str, *, cursor: int = 0) -> Iterator[Verdict]:
        """The job's verdicts, each once, as they are stored, until the job ends; resumes by
        itself after dropped connections and restarts. ``cursor``: verdicts already received."""
        stream = Cursor(job_id, cursor, Outage(self.base_url, self.max_wait))
        while True:
            response = Retrying(**retry_policy(stream.outage, True))(self._open, stream.call())
            stream.opened()
            try:
                for chunk in response.iter_bytes():
                    yield from stream.feed(chunk)
                stream.end()
                return
            except httpx.TransportError as error:
                delay = stream.dropped(error)
            finally:
                response.close()
            time.sleep(delay)

    def wait(self, job_id: str, *, timeout: float | None = None, poll: float = 0.5) -> JobPublic:
        """Poll until the job has ended (succeeded, failed or cancelled); ``TimeoutError`` after
        ``timeout`` seconds."""
        started = time.monotonic()
        while (job := self.job(job_id)).state not in TERMINAL:
            time.sleep(poll_wait(job, started, timeout, poll))
        return job

    def job(self, job_id: str) -> JobPublic:
        """The job's state, counts and cost so far."""
        return self._call(calls.job(job_id))

    def cancel(self, job_id: str) -> JobPublic:
        """Stop the job; the verdicts stored so far stay readable."""
        return self._call(calls.cancel(job_id))

    def delete(self, job_id: str) -> None:
        """Remove the job, its transcripts and its verdicts (the verdict cache keeps the calls)."""
        self._call(calls.delete(job_id))

    def report(
        self,
        *,
        job_id: str | None = None,
        verdicts: Sequence[Verdict] | None = None,
        by: str | Sequence[str] | None = None,
        compare: tuple[str, str] | None = None,
    ) -> ReportPublic:
        """Flag rates with 95% intervals over a job's verdicts or given ones, grouped ``by``
        (default model, rubric); ``compare=(base, tuned)`` adds a paired comparison."""
        return self._call(calls.report(job_id, verdicts, by, compare))

    def rubrics(self) -> list[RubricSummary]:
        """The rubrics the service grades with."""
        return self._call(calls.RUBRICS)

    def rubric(self, rubric_id: str) -> RubricPublic:
        """One rubric in full."""
        return self._call(calls.rubric(rubric_id))

    def judges(self) -> JudgesPublic:
        """The judges a request may choose."""
        return self._call(calls.JUDGES)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, call: Call[T]) -> T:
        policy = retry_policy(Outage(self.base_url, self.max_wait), call.resend)
        result: T = Retrying(**policy)(self._send, call)
        return result

    def _send(self, call: Call[T]) -> T:
        return call.read(checked(self._http.send(self._request(call))).content)

    def _open(self, call: Call[None]) -> httpx.Response:
        response = self._http.send(self._request(call), stream=True)
        if not response.is_success:
            try:
                response.read()
            finally:
                response.close()
            checked(response)
        return response

    def _request(self, call: Call[Any]) -> httpx.Request:
        return self._http.build_request(
            call.method, call.path, content=call.body, params=call.params, headers=call.headers
        )


class AsyncClient:
    """The judge service over HTTP, for asyncio: ``Client``'s methods, awaited (``verdicts`` is
    an async iterator). Use it as an async context manager, or ``await aclose()``."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_wait: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url, headers = calls.connection(base_url, api_key)
        self.max_wait = max_wait
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    async def grade(
        self,
        transcripts: Iterable[TranscriptLike],
        rubrics: str | Sequence[str],
        *,
        judge: JudgeLike = None,
        cache: CachePolicy | str = CachePolicy.USE,
        max_cost_usd: float | None = None,
    ) -> GradePublic:
        """As ``Client.grade``."""
        body = calls.batch(transcripts, rubrics, judge, cache, max_cost_usd)
        return await self._call(calls.grade(body))

    async def submit(
        self,
        transcripts: Iterable[TranscriptLike],
        rubrics: str | Sequence[str],
        *,
        judge: JudgeLike = None,
        cache: CachePolicy | str = CachePolicy.USE,
        idempotency_key: str | None = None,
        max_cost_usd: float | None = None,
    ) -> JobPublic:
        """As ``Client.submit``."""
        batch = calls.batch(transcripts, rubrics, judge, cache, max_cost_usd)
        return await self._call(calls.submit(batch, idempotency_key))

    async def estimate(
        self,
        transcripts: Iterable[TranscriptLike],
        rubrics: str | Sequence[str],
        *,
        judge: JudgeLike = None,
        cache: CachePolicy | str = CachePolicy.USE,
    ) -> Estimate:
        """As ``Client.estimate``."""
        return await self._call(calls.estimate(calls.batch(transcripts, rubrics, judge, cache)))

    async def verdicts(self, job_id: str, *, cursor: int = 0) -> AsyncIterator[Verdict]:
        """As ``Client.verdicts``, an async iterator."""
        stream = Cursor(job_id, cursor, Outage(self.base_url, self.max_wait))
        while True:
            retrying = AsyncRetrying(**retry_policy(stream.outage, True))
            response: httpx.Response = await retrying(self._open, stream.call())
            stream.opened()
            try:
                async for chunk in response.aiter_bytes():
                    for verdict in stream.feed(chunk):
                        yield verdict
                stream.end()
                return
            except httpx.TransportError as error:
                delay = stream.dropped(error)
            finally:
                await response.aclose()
            await asyncio.sleep(delay)

    async def wait(
        self, job_id: str, *, timeout: float | None = None, poll: float = 0.5
    ) -> JobPublic:
        """As ``Client.wait``."""
        started = time.monotonic()
        while (job := await self.job(job_id)).state not in TERMINAL:
            await asyncio.sleep(poll_wait(job, started, timeout, poll))
        return job

    async def job(self, job_id: str) -> JobPublic:
        """As ``Client.job``."""
        return await self._call(calls.job(job_id))

    async def cancel(self, job_id: str) -> JobPublic:
        """As ``Client.cancel``."""
        return await self._call(calls.cancel(job_id))

    async def delete(self, job_id: str) -> None:
        """As ``Client.delete``."""
        await self._call(calls.delete(job_id))

    async def report(
        self,
        *,
        job_id: str | None = None,
        verdicts: Sequence[Verdict] | None = None,
        by: str | Sequence[str] | None = None,
        compare: tuple[str, str] | None = None,
    ) -> ReportPublic:
        """As ``Client.report``."""
        return await self._call(calls.report(job_id, verdicts, by, compare))

    async def rubrics(self) -> list[RubricSummary]:
        """As ``Client.rubrics``."""
        return await self._call(calls.RUBRICS)

    async def rubric(self, rubric_id: str) -> RubricPublic:
        """As ``Client.rubric``."""
        return await self._call(calls.rubric(rubric_id))

    async def judges(self) -> JudgesPublic:
        """As ``Client.judges``."""
        return await self._call(calls.JUDGES)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _call(self, call: Call[T]) -> T:
        policy = retry_policy(Outage(self.base_url, self.max_wait), call.resend)
        return await AsyncRetrying(**policy)(self._send, call)

    async def _send(self, call: Call[T]) -> T:
        response = await self._http.send(self._request(call))
        return call.read(checked(response).content)

    async def _open(self, call: Call[None]) -> httpx.Response:
        response = await self._http.send(self._request(call), stream=True)
        if not response.is_success:
            try:
                await response.aread()
            finally:
                await response.aclose()
            checked(response)
        return response

    def _request(self, call: Call[Any]) -> httpx.Request:
        return self._http.build_request(
            call.method, call.path, content=call.body, params=call.params, headers=call.headers
        )
