"""When to try again and where to pick up, for both clients: the retry policy (tenacity's
arguments, taken alike by ``Retrying`` and ``AsyncRetrying``), its budget (``Outage``), and a
verdict stream's position (``Cursor``). No I/O here.

- Connection errors and 429/502/503/504 are retried, waiting as long as ``Retry-After`` asks or
  backing off from 0.2 s to 2 s, until the service has been away for ``max_wait`` seconds; then
  ``JudgeUnavailableError``. A call that must not be sent twice (``Call.resend`` false) is retried
  only when it cannot have reached the server: no connection, or 429/503.
- A stream counts complete lines only, so a line cut by a dropped connection is neither yielded
  nor counted; it comes again, whole, from the cursor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from tenacity import RetryCallState, retry_if_exception, wait_exponential, wait_random

from judge.client.calls import Call, verdicts
from judge.client.errors import JudgeAPIError, JudgeUnavailableError
from judge.verdict import Verdict
from judge.wire import JobPublic

logger = logging.getLogger("judge.client")

NOT_DONE = frozenset({429, 503})  # the server did no work: always safe to send again
GATEWAY = frozenset({502, 504})  # a proxy's: the request may have reached the server
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
BROKEN = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)
HEALTHY = 5.0  # seconds a stream must stay up to end an outage without bringing verdicts
BACKOFF = wait_exponential(multiplier=0.2, max=2.0) + wait_random(0, 0.1)  # 0.2, 0.4, ... 2 s


class Outage:
    """How long the service has been failing this client; retries stop before the next wait would
    take that past ``limit``. A verdict stream keeps one across reconnects and clears it when
    verdicts arrive."""

    def __init__(self, url: str, limit: float) -> None:
        self.url = url
        self.limit = limit
        self.since: float | None = None

    @property
    def waited(self) -> float:
        return 0.0 if self.since is None else time.monotonic() - self.since

    def failed(self) -> None:
        if self.since is None:
            self.since = time.monotonic()

    def recovered(self) -> None:
        self.since = None

    def exhausted(self, state: RetryCallState) -> bool:
        """tenacity's stop condition."""
        self.failed()
        return self.waited + state.upcoming_sleep > self.limit

    def give_up(self, state: RetryCallState) -> None:
        """tenacity's last word: the service stayed away."""
        last = state.outcome.exception() if state.outcome else None
        raise JudgeUnavailableError(self.url, self.waited, last) from last


def retry_policy(outage: Outage, resend: bool) -> dict[str, Any]:
    """Arguments for tenacity's ``Retrying`` and ``AsyncRetrying`` alike."""
    return {
        "retry": retry_if_exception(_retryable(resend)),
        "wait": _wait,
        "stop": outage.exhausted,
        "retry_error_callback": outage.give_up,
        "before_sleep": _log_retry,
    }


def _retryable(resend: bool) -> Callable[[BaseException], bool]:
    def retryable(error: BaseException) -> bool:
        if isinstance(error, JudgeAPIError):
            return error.status in NOT_DONE or (resend and error.status in GATEWAY)
        return isinstance(error, BROKEN if resend else NOT_SENT)

    return retryable


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, JudgeAPIError) and error.retry_after is not None:
        return error.retry_after
    return BACKOFF(state)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    logger.info("judge service: %r; trying again in %.1f s", error, state.upcoming_sleep)


class Cursor:
    """Where a job's verdict stream stands: complete lines received (``position``, the cursor to
    resume from), the start of a line whose end a dropped connection took, and how many times the
    stream was reopened (``reconnects``)."""

    def __init__(self, job_id: str, position: int, outage: Outage) -> None:
        self.job_id = job_id
        self.position = position
        self.outage = outage
        self.reconnects = 0
        self._partial = b""
        self._opened = (time.monotonic(), position)  # when the connection opened, and where
        self._fruitless = 0  # drops in a row that brought no verdict

    def call(self) -> Call[None]:
        """The request that (re)opens the stream where it stands."""
        self._partial = b""  # the server sends that line again, whole
        return verdicts(self.job_id, self.position)

    def opened(self) -> None:
        """The stream is open (after however many attempts it took)."""
        self._opened = (time.monotonic(), self.position)

    def feed(self, chunk: bytes) -> list[Verdict]:
        """The verdicts whose lines this chunk completes."""
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        received = [Verdict.model_validate_json(line) for line in lines if line.strip()]
        if received:
            self.position += len(received)
            self.outage.recovered()
        return received

    def end(self) -> None:
        """The server ended the stream (the job has ended), unless it stopped inside a line."""
        if self._partial.strip():
            raise httpx.RemoteProtocolError("the verdict stream ended inside a line")

    def dropped(self, error: httpx.TransportError) -> float:
        """The connection broke. A connection that brought verdicts or stayed up ``HEALTHY``
        seconds ends any earlier outage; the drop begins one (an idle stream's read timeout
        excepted). Past ``max_wait`` the client gives up; otherwise it reconnects after the
        returned seconds: at once after verdicts, backing off after drops that brought none."""
        self.reconnects += 1
        since, position = self._opened
        progressed = self.position > position
        if progressed or time.monotonic() - since >= HEALTHY:
            self.outage.recovered()
        self._fruitless = 0 if progressed else self._fruitless + 1
        delay = min(2.0, 0.1 * 2**self._fruitless) if self._fruitless else 0.0
        if not isinstance(error, httpx.ReadTimeout):
            self.outage.failed()
        if self.outage.waited + delay > self.outage.limit:
            raise JudgeUnavailableError(self.outage.url, self.outage.waited, error) from error
        logger.warning(
            "verdict stream of job %s dropped after %d verdicts (%r); resuming from cursor %d",
            self.job_id,
            self.position,
            error,
            self.position,
        )
        return delay


def poll_wait(job: JobPublic, started: float, timeout: float | None, poll: float) -> float:
    """How long to sleep before asking about an unfinished job again; ``TimeoutError`` once it
    would outlast ``timeout``."""
    if timeout is not None and time.monotonic() - started + poll > timeout:
        raise TimeoutError(
            f"job {job.id} is still {job.state} after {timeout} s "
            f"({job.summary.verdicts} of {job.total} verdicts)"
        )
    return poll
