"""OpenAI-compatible endpoints over one pooled aiohttp session: a plain POST per call."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Annotated, Any

import aiohttp
import orjson
from pydantic import BaseModel, Field, ValidationError, field_validator

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


class _TopLogprob(BaseModel):
    token: str
    logprob: float = Field(allow_inf_nan=False, le=0)


class _TokenLogprobs(BaseModel):
    top_logprobs: list[_TopLogprob] | None = None


def _alternatives(token: _TokenLogprobs) -> list[tuple[str, float]]:
    """The first token's alternatives, each token once (some vLLM versions list the sampled
    token twice); ``TransportError`` when their probabilities still sum past 1 (a hair more is
    rounding): that is no judge's distribution, and would make a logprob score's numeric mass,
    its confidence, more than 1."""
    alternatives: dict[str, float] = {}
    for item in token.top_logprobs or []:
        alternatives.setdefault(item.token, item.logprob)
    if sum(math.exp(logprob) for logprob in alternatives.values()) > 1.01:
        raise TransportError(
            ErrorKind.PROVIDER,
            "malformed reply from the judge endpoint (the top_logprobs' probabilities sum to "
            "more than 1)",
            transient=False,
        )
    return list(alternatives.items())


class _Logprobs(BaseModel):
    content: list[_TokenLogprobs] | None = None


class _Message(BaseModel):
    content: str | None = None
    refusal: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts(cls, value: Any) -> Any:
        """Some servers send content parts (``[{"type": "text", "text": ...}]``): join their
        texts (a part whose text is not a string is a malformed reply, not text to read)."""
        if isinstance(value, list):
            texts = [part.get("text", "") for part in value if isinstance(part, dict)]
            if not all(isinstance(text, str) for text in texts):
                raise ValueError("a content part's text must be a string")
            return "".join(texts)
        return value


class _Choice(BaseModel):
    message: _Message = _Message()
    finish_reason: str | None = None
    logprobs: _Logprobs | None = None


MAX_TOKENS_A_CALL = 10**8
"""No call reads or writes more tokens: a count past it is a broken (or hostile) endpoint's, and
would be billed."""
_TokenCount = Annotated[int | None, Field(default=None, ge=0, le=MAX_TOKENS_A_CALL)]


class _PromptTokens(BaseModel):
    cached_tokens: _TokenCount = None


class _Usage(BaseModel):
    prompt_tokens: _TokenCount = None
    completion_tokens: _TokenCount = None
    prompt_tokens_details: _PromptTokens | None = None
    cache_creation_input_tokens: _TokenCount = None
    """Anthropic's (through litellm): input written to its prompt cache."""


class _Reply(BaseModel):
    """The part of an OpenAI chat completion the judge reads; the rest is ignored."""

    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage | None = None


def parse_completion(raw: bytes | dict[str, Any]) -> Completion:
    """An OpenAI chat completion (the bytes of a reply, or the parsed body a provider batch's
    output line holds) as a ``Completion``; a ``TransportError`` when it is malformed. Every
    transport's reply is read here, so that every judge is held to the same shape."""
    try:
        if isinstance(raw, bytes):
            reply = _Reply.model_validate_json(raw)
        else:
            reply = _Reply.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "reply"
        raise TransportError(
            ErrorKind.PROVIDER,
            f"malformed reply from the judge endpoint ({where}: {error['msg']})",
            transient=False,
        ) from None
    choice = reply.choices[0]
    tokens = choice.logprobs.content if choice.logprobs is not None else None
    usage = reply.usage or _Usage()
    return Completion(
        content=choice.message.content or "",
        refusal=choice.message.refusal,
        finish_reason=choice.finish_reason,
        top_logprobs=_alternatives(tokens[0]) if tokens else None,
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cached_input_tokens=(usage.prompt_tokens_details or _PromptTokens()).cached_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
    )
