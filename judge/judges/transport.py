"""How the LLM judge reaches a model: litellm for everything, or one pooled HTTP session for
OpenAI-compatible endpoints.

``litellm.acompletion`` costs several milliseconds of CPU per call, about 25 times a plain POST.
For endpoints that speak the OpenAI chat API (OpenAI, vLLM, Ollama, llama.cpp and the many hosted
providers that copy it) ``HTTPTransport`` sends the same request from one shared aiohttp session.
litellm still decides which transport a model string gets (``resolve``), and still prices calls
(its table, looked up once per model). Both transports return the same ``Completion`` and raise
the same ``TransportError``, so the judge behaves identically on either.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

import aiohttp
import orjson

from judge.errors import ErrorKind
from judge.heap import freeze_long_lived


@dataclass(frozen=True)
class Completion:
    """What a judge call returned, whichever transport carried it."""

    content: str
    refusal: str | None
    finish_reason: str | None
    top_logprobs: list[tuple[str, float]] | None
    input_tokens: int
    output_tokens: int


class TransportError(Exception):
    """A failed call: its verdict error kind, whether a retry may help, and how long the
    provider asked us to wait (``Retry-After``)."""

    def __init__(
        self, kind: ErrorKind, message: str, *, transient: bool, retry_after: float | None = None
    ):
        self.kind = kind
        self.transient = transient
        self.retry_after = retry_after
        super().__init__(message)


class Transport(Protocol):
    """Sends one chat completion request."""

    name: str

    async def complete(
        self, messages: list[dict[str, str]], params: dict[str, Any]
    ) -> Completion: ...


@cache
def litellm_module() -> Any:
    """litellm, imported once with its network lookups switched off."""
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    freeze_long_lived()  # its import is most of the process's objects; collections skip them
    return litellm


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class LitellmTransport:
    """Any provider litellm knows, through ``litellm.acompletion``."""

    name = "litellm"

    def __init__(self, model: str, api_base: str | None, api_key: str | None, timeout: float):
        self.model = model
        self.api_base = api_base
        self.api_key = api_key
        self.timeout = timeout

    async def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Completion:
        litellm = litellm_module()
        try:
            response = await litellm.acompletion(
                model=self.model,
                messages=messages,
                api_base=self.api_base,
                api_key=self.api_key,
                timeout=self.timeout,
                max_retries=0,  # the OpenAI SDK's own retries; litellm's are off by default
                drop_params=True,
                **params,
            )
        except Exception as exc:
            raise _classify_litellm(litellm, exc) from exc
        choice = response.choices[0]
        logprobs = getattr(choice, "logprobs", None)
        content = getattr(logprobs, "content", None) if logprobs is not None else None
        usage = getattr(response, "usage", None)
        return Completion(
            content=choice.message.content or "",
            refusal=getattr(choice.message, "refusal", None),
            finish_reason=choice.finish_reason,
            top_logprobs=(
                [(item.token, item.logprob) for item in content[0].top_logprobs or []]
                if content
                else None
            ),
            input_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            output_tokens=getattr(usage, "completion_tokens", 0) or 0,
        )


def _classify_litellm(litellm: Any, exc: Exception) -> TransportError:
    message = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
    headers = getattr(exc, "litellm_response_headers", None) or getattr(
        getattr(exc, "response", None), "headers", None
    )
    retry_after = _retry_after(headers.get("retry-after") if headers is not None else None)
    if isinstance(exc, litellm.RateLimitError):
        return TransportError(
            ErrorKind.RATE_LIMITED, message, transient=True, retry_after=retry_after
        )
    if isinstance(exc, litellm.Timeout):
        return TransportError(ErrorKind.TIMEOUT, message, transient=True)
    if isinstance(exc, litellm.ContentPolicyViolationError):
        return TransportError(ErrorKind.JUDGE_REFUSED, message, transient=False)
    transient = isinstance(
        exc,
        litellm.APIConnectionError | litellm.InternalServerError | litellm.ServiceUnavailableError,
    )
    return TransportError(ErrorKind.PROVIDER, message, transient=transient, retry_after=retry_after)


_SESSIONS: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}


def shared_session() -> aiohttp.ClientSession:
    """The event loop's one pooled HTTP session, shared by every HTTP transport on it (a session
    cannot cross loops)."""
    loop = asyncio.get_running_loop()
    session = _SESSIONS.get(loop)
    if session is None or session.closed:
        for stale in [other for other in _SESSIONS if other.is_closed()]:
            del _SESSIONS[stale]
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        session = _SESSIONS[loop] = aiohttp.ClientSession(connector=connector)
    return session


async def close_sessions() -> None:
    """Close the running loop's shared session: call it before the loop ends."""
    session = _SESSIONS.pop(asyncio.get_running_loop(), None)
    if session is not None:
        await session.close()


class HTTPTransport:
    """An OpenAI-compatible ``/chat/completions`` endpoint, through the loop's shared session."""

    name = "http"

    def __init__(self, model: str, api_base: str, api_key: str | None, timeout: float):
        self.model = model
        self.url = api_base.rstrip("/") + "/chat/completions"
        self.headers = {"content-type": "application/json"}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Completion:
        body = orjson.dumps({"model": self.model, "messages": messages, **params})
        try:
            async with shared_session().post(
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
            ErrorKind.RATE_LIMITED, message, transient=True, retry_after=_retry_after(retry_after)
        )
    if status == 408:
        return TransportError(ErrorKind.TIMEOUT, message, transient=True)
    return TransportError(
        ErrorKind.PROVIDER, message, transient=status >= 500, retry_after=_retry_after(retry_after)
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


OPENAI_COMPATIBLE = frozenset({"openai", "hosted_vllm", "openai_like", "custom_openai"})
"""litellm providers whose wire format is the OpenAI chat API."""


def resolve(
    model: str, api_base: str | None, api_key: str | None, timeout: float, *, force_litellm: bool
) -> Transport:
    """The transport for a model string: the HTTP one where litellm resolves it to an
    OpenAI-compatible endpoint with a known address, litellm otherwise (or when forced)."""
    litellm = litellm_module()  # callers run this in a worker thread: the import takes seconds
    if force_litellm:
        return LitellmTransport(model, api_base, api_key, timeout)
    try:
        name, provider, dynamic_key, dynamic_base = litellm.get_llm_provider(
            model=model, api_base=api_base, api_key=api_key
        )
    except Exception:
        return LitellmTransport(model, api_base, api_key, timeout)
    base = (
        api_base or dynamic_base or ("https://api.openai.com/v1" if provider == "openai" else None)
    )
    if provider not in OPENAI_COMPATIBLE or base is None:
        return LitellmTransport(model, api_base, api_key, timeout)
    key = (
        api_key
        or dynamic_key
        or (os.environ.get("OPENAI_API_KEY") if provider == "openai" else None)
    )
    return HTTPTransport(name, base, key, timeout)


@cache
def prices(model: str) -> tuple[float, float] | None:
    """Dollars per input and output token from litellm's table, looked up once per model."""
    try:
        info = litellm_module().get_model_info(model)
        return float(info["input_cost_per_token"]), float(info["output_cost_per_token"])
    except Exception:
        return None
