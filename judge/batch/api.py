"""An OpenAI-compatible Files + Batches API over httpx: upload a JSONL input file, create a batch
on ``/v1/chat/completions`` with a 24 h window, look at it, read its output and error files, and
cancel it.

Plain HTTP rather than litellm's batch and file functions: these are five small REST calls, the
request lines are the bodies the live transport already sends (``HTTPTransport.request_body``) and
the results are read by the parser live replies go through (``parse_completion``). litellm would
add only its import (seconds, 150 MiB; and it is kept to one module) and the OpenAI SDK's own
retries in front of the same requests; it cannot create Anthropic batches either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from judge.errors import BatchError

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"


class BatchStatus(StrEnum):
    """Where a provider batch is (OpenAI's names)."""

    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


FINISHED = frozenset(
    {BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.EXPIRED, BatchStatus.CANCELLED}
)
"""Statuses a batch never leaves: its output and error files are final."""


class RequestCounts(BaseModel):
    model_config = ConfigDict(extra="ignore")

    total: int = 0
    completed: int = 0
    failed: int = 0


class _Problem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    code: str | None = None
    message: str | None = None
    line: int | None = None


class _Problems(BaseModel):
    model_config = ConfigDict(extra="ignore")

    data: list[_Problem] = []


class Batch(BaseModel):
    """The part of a provider's batch object that the judge reads."""

    model_config = ConfigDict(extra="ignore")

    id: str
    status: BatchStatus
    output_file_id: str | None = None
    error_file_id: str | None = None
    request_counts: RequestCounts = RequestCounts()
    errors: _Problems | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def problems(self) -> str:
        """What the provider said was wrong with the batch as a whole (a failed one)."""
        items = self.errors.data if self.errors is not None else []
        said = [
            f"{p.code or 'error'}: {p.message or ''}" + (f" (line {p.line})" if p.line else "")
            for p in items[:5]
        ]
        return "; ".join(said) or "no reason given"


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, BatchError) and exc.transient


class BatchAPI:
    """The Files and Batches endpoints under ``api_base`` (as in ``https://api.openai.com/v1``).

    Reads (and uploads, which only store a file) are retried on connection errors, 429 and 5xx;
    creating a batch only when its request cannot have created one (no connection, or a 429), so
    a retry never pays twice. Other failures raise ``BatchError``.
    """

    def __init__(
        self,
        api_base: str,
        api_key: str | None,
        *,
        timeout: float = 60.0,
        upload_timeout: float = 600.0,
        retries: int = 3,
    ):
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.api_base = api_base.rstrip("/")
        self.upload_timeout = upload_timeout
        self.retries = retries
        self._http = httpx.AsyncClient(
            base_url=self.api_base + "/", headers=headers, timeout=timeout
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def upload(self, path: Path) -> str:
        """Store a JSONL input file (``purpose=batch``); its id."""

        async def send() -> httpx.Response:
            with path.open("rb") as handle:
                return await self._http.post(
                    "files",
                    data={"purpose": "batch"},
                    files={"file": (path.name, handle, "application/jsonl")},
                    timeout=self.upload_timeout,
                )

        reply = await self._retrying(send, safe=True)
        return str(reply.json()["id"])

    async def create(self, input_file_id: str, metadata: dict[str, str]) -> Batch:
        """Start a batch of the file's chat completion requests, to finish within 24 h."""
        body = {
            "input_file_id": input_file_id,
            "endpoint": ENDPOINT,
            "completion_window": COMPLETION_WINDOW,
            "metadata": metadata,
        }

        async def send() -> httpx.Response:
            return await self._http.post("batches", json=body)

        return Batch.model_validate_json((await self._retrying(send, safe=False)).content)

    async def get(self, batch_id: str) -> Batch:
        async def send() -> httpx.Response:
            return await self._http.get(f"batches/{batch_id}")

        return Batch.model_validate_json((await self._retrying(send, safe=True)).content)

    async def cancel(self, batch_id: str) -> Batch:
        """Ask the provider to stop the batch (what it finished stays in its output file)."""

        async def send() -> httpx.Response:
            return await self._http.post(f"batches/{batch_id}/cancel")

        return Batch.model_validate_json((await self._retrying(send, safe=True)).content)

    async def lines(self, file_id: str) -> AsyncIterator[str]:
        """The lines of a file (an output or error file), streamed."""
        try:
            async with self._http.stream("GET", f"files/{file_id}/content") as reply:
                if reply.status_code != 200:
                    await reply.aread()
                    raise _failure(reply)
                async for line in reply.aiter_lines():
                    if line.strip():
                        yield line
        except httpx.HTTPError as exc:
            raise BatchError(f"reading file {file_id}: {exc!r}", transient=True) from exc

    async def _retrying(self, send: Any, *, safe: bool) -> httpx.Response:
        retrying = AsyncRetrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential_jitter(initial=0.5, max=8),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(send, safe=safe)
        raise AssertionError("tenacity either returns or raises")  # pragma: no cover

    async def _once(self, send: Any, *, safe: bool) -> httpx.Response:
        try:
            reply: httpx.Response = await send()
        except httpx.ConnectError as exc:
            raise BatchError(f"cannot connect to {self.api_base}: {exc}", transient=True) from exc
        except httpx.HTTPError as exc:  # sent, perhaps received: only a safe request retries
            raise BatchError(f"{self.api_base}: {exc!r}", transient=safe) from exc
        if reply.status_code == 200:
            return reply
        failure = _failure(reply)
        failure.transient = reply.status_code == 429 or (safe and reply.status_code >= 500)
        raise failure


def _failure(reply: httpx.Response) -> BatchError:
    try:
        detail = reply.json().get("error", {}).get("message") or reply.text[:300]
    except (ValueError, AttributeError):
        detail = reply.text[:300]
    request = reply.request
    where = f"{request.method} {request.url}"
    message = f"{where} answered HTTP {reply.status_code}: {detail}"
    if reply.status_code in (404, 405) and request.method == "POST":
        message += " (an endpoint without an OpenAI Files/Batches API answers so: grade live)"
    return BatchError(message, status=reply.status_code)
