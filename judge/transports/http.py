"""OpenAI-compatible endpoints over one pooled aiohttp session: a plain POST per call."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from judge.errors import ErrorKind
from judge.transports.base import Completion, TransportError, parse_retry_after


class HTTPTransport:
    """An OpenAI-compatible ``/chat/completions`` endpoint, through a pooled session of its own.

    The session is made on first use, on the event loop that uses it (a session cannot cross
    loops: used from another loop, the transport starts a new one), and closed by ``aclose``.
    """

    name = "http"

    def __init__(self, model: str, api_base: str, api_key: str | None, timeout: float):
        self.model = model
        self.url = api_base.rstrip("/") + "/chat/completions"
        self.headers = {"content-type": "application/json"}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _pool(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector)
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        """Close the pooled connections (on the loop that opened them)."""
        session, self._session = self._session, None
        if session is not None and self._loop is asyncio.get_running_loop():
            await session.close()

    async def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Completion:
        body = orjson.dumps({"model": self.model, "messages": messages, **params})
        try:
            async with self._pool().post(
                self.url, data=body, headers=self.headers, timeout=self.timeout
            ) as response:
                raw = await response.read()
                if response.status != 200:
                    raise _classify_status(
                        response.status, raw, response.headers.get("retry-after")
                    )
        except TransportError:
            raise
        except TimeoutError as exc:
            raise TransportError(
                ErrorKind.TIMEOUT,
                f"Timeout: no reply within {self.timeout.total} s",
                transient=True,
            ) from exc
        except aiohttp.ClientError as exc:
            raise TransportError(
                ErrorKind.PROVIDER, f"{type(exc).__name__}: {exc}", transient=True
            ) from exc
        return _completion(orjson.loads(raw))


def _classify_status(status: int, raw: bytes, retry_after: str | None) -> TransportError:
    try:
        detail = orjson.loads(raw).get("error", {}).get("message") or raw[:300].decode()
    except (orjson.JSONDecodeError, AttributeError):
        detail = raw[:300].decode(errors="replace")
    message = f"HTTP {status}: {detail}"
    if status == 429:
        return TransportError(
            ErrorKind.RATE_LIMITED,
            message,
            transient=True,
            retry_after=parse_retry_after(retry_after),
        )
    if status == 408:
        return TransportError(ErrorKind.TIMEOUT, message, transient=True)
    return TransportError(
        ErrorKind.PROVIDER,
        message,
        transient=status >= 500,
        retry_after=parse_retry_after(retry_after),
    )


def _completion(data: dict[str, Any]) -> Completion:
    choice = data["choices"][0]
    message = choice.get("message") or {}
    logprobs = (choice.get("logprobs") or {}).get("content")
    usage = data.get("usage") or {}
    return Completion(
        content=message.get("content") or "",
        refusal=message.get("refusal"),
        finish_reason=choice.get("finish_reason"),
        top_logprobs=(
            [(item["token"], item["logprob"]) for item in logprobs[0].get("top_logprobs") or []]
            if logprobs
            else None
        ),
        input_tokens=usage.get("prompt_tokens") or 0,
        output_tokens=usage.get("completion_tokens") or 0,
    )
