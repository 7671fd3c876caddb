"""OpenAI-compatible endpoints over one pooled aiohttp session: a plain POST per call."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson

from judge.errors import ErrorKind
from judge.transports.base import Completion, TransportError, parse_retry_after
from judge.transports.reply import parse_completion


class HTTPTransport:
    """An OpenAI-compatible ``/chat/completions`` endpoint, through a pooled session of its own.

    The session is made on first use, on the event loop that uses it (a session cannot cross
    loops: used from another loop, the transport starts a new one), and closed by ``aclose``.
    """

    name = "http"

    def __init__(self, model: str, api_base: str, api_key: str | None, timeout: float):
        self.model = model
        self.api_base = api_base.rstrip("/")
        self.api_key = api_key
        self.url = self.api_base + "/chat/completions"
        self.headers = {"content-type": "application/json"}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"
        self.timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10.0))
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

    def request_body(
        self, messages: list[dict[str, str]], params: dict[str, Any]
    ) -> dict[str, Any]:
        """The chat completion request for these messages (what a call sends, and what a
        provider batch holds for it)."""
        return {"model": self.model, "messages": messages, **params}

    async def complete(
        self, messages: list[dict[str, str]], params: dict[str, Any], *, static: Sequence[int] = ()
    ) -> Completion:
        """One request (OpenAI-compatible servers cache prompt prefixes by themselves)."""
        body = orjson.dumps(self.request_body(messages, params))
        try:
            async with self._pool().post(
                self.url, data=body, headers=self.headers, timeout=self.timeout
            ) as response:
                raw = await _read_limited(response)
                if response.status != 200:
                    raise _classify_status(
                        response.status, raw, response.headers.get("retry-after")
                    )
        except TransportError:
            raise
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise TransportError(
                ErrorKind.UNREACHABLE, f"cannot connect to {self.url}: {exc}", transient=True
            ) from exc
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
        return parse_completion(raw)


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


MAX_REPLY_BYTES = 8 * 2**20
"""A judge's reply is a few kilobytes; an endpoint that sends more is not one to trust."""


async def _read_limited(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise TransportError(
                ErrorKind.PROVIDER,
                f"the judge endpoint sent a reply over {MAX_REPLY_BYTES} bytes",
                transient=False,
            )
        chunks.append(chunk)
    return b"".join(chunks)
