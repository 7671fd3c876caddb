"""Any provider litellm knows, through ``litellm.acompletion``; and ``resolve``, litellm's say in
which transport a model string gets. The only module that imports litellm (lazily: its import
takes seconds and 150 MiB, which the offline path never pays)."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from functools import cache
from typing import Any

import orjson

from judge.errors import ErrorKind
from judge.heap import freeze_long_lived
from judge.transports.base import Completion, Transport, TransportError, parse_retry_after
from judge.transports.http import HTTPTransport
from judge.transports.reply import malformed_reply, parse_completion


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


class LitellmTransport:
    """Any provider litellm knows, through ``litellm.acompletion``. For providers that cache a
    prompt prefix only when asked (``CACHE_CONTROL_PROVIDERS``), the static part of each prompt
    is marked with ``cache_control``."""

    name = "litellm"

    def __init__(
        self,
        model: str,
        api_base: str | None,
        api_key: str | None,
        timeout: float,
        *,
        cache_control: bool = False,
    ):
        self.model = model
        self.api_base = api_base
        self.api_key = api_key
        self.timeout = timeout
        self.cache_control = cache_control

    async def aclose(self) -> None:
        """Nothing to close: litellm keeps its clients for the process."""

    async def complete(
        self, messages: list[dict[str, str]], params: dict[str, Any], *, static: Sequence[int] = ()
    ) -> Completion:
        litellm = litellm_module()
        try:
            response = await litellm.acompletion(
                model=self.model,
                messages=with_cache_breakpoint(messages, static)
                if self.cache_control
                else messages,
                api_base=self.api_base,
                api_key=self.api_key,
                timeout=self.timeout,
                max_retries=0,  # the OpenAI SDK's own retries; litellm's are off by default
                drop_params=True,
                **params,
            )
        except Exception as exc:
            raise _classify_litellm(litellm, exc) from exc
        try:  # the reply read exactly as the HTTP transport reads one, through its JSON
            raw = orjson.dumps(response.model_dump())
        except Exception as exc:  # e.g. a lone surrogate, a 2**70: nothing JSON can carry
            raise malformed_reply(str(exc)) from None
        return parse_completion(raw)


def with_cache_breakpoint(
    messages: list[dict[str, str]], static: Sequence[int]
) -> list[dict[str, Any]]:
    """The messages with a ``cache_control`` mark where their static prefix ends (the message
    holding its end becomes content blocks, split there); unchanged when there is none."""
    ends = [index for index, length in enumerate(static) if length > 0]
    if not ends:
        return list(messages)
    last = ends[-1]
    text, split = messages[last]["content"], static[last]
    blocks: list[dict[str, Any]] = [
        {"type": "text", "text": text[:split], "cache_control": {"type": "ephemeral"}}
    ]
    if text[split:]:
        blocks.append({"type": "text", "text": text[split:]})
    marked: list[dict[str, Any]] = list(messages)
    marked[last] = {**messages[last], "content": blocks}
    return marked


CACHE_CONTROL_PROVIDERS = frozenset({"anthropic"})
"""litellm providers that cache a prompt prefix only where the request marks it."""


def _classify_litellm(litellm: Any, exc: Exception) -> TransportError:
    message = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
    headers = getattr(exc, "litellm_response_headers", None) or getattr(
        getattr(exc, "response", None), "headers", None
    )
    retry_after = parse_retry_after(headers.get("retry-after") if headers is not None else None)
    if isinstance(exc, litellm.RateLimitError):
        return TransportError(
            ErrorKind.RATE_LIMITED, message, transient=True, retry_after=retry_after
        )
    if isinstance(exc, litellm.Timeout):
        return TransportError(ErrorKind.TIMEOUT, message, transient=True)
    if isinstance(exc, litellm.ContentPolicyViolationError):
        return TransportError(ErrorKind.JUDGE_REFUSED, message, transient=False)
    if _could_not_connect(exc):
        return TransportError(ErrorKind.UNREACHABLE, message, transient=True)
    transient = isinstance(
        exc,
        litellm.APIConnectionError | litellm.InternalServerError | litellm.ServiceUnavailableError,
    )
    return TransportError(ErrorKind.PROVIDER, message, transient=transient, retry_after=retry_after)


OPENAI_COMPATIBLE = frozenset({"openai", "hosted_vllm", "openai_like", "custom_openai"})
"""litellm providers whose wire format is the OpenAI chat API."""


def resolve(
    model: str, api_base: str | None, api_key: str | None, timeout: float, *, force_litellm: bool
) -> Transport:
    """The transport for a model string: the HTTP one where litellm resolves it to an
    OpenAI-compatible endpoint with a known address, litellm otherwise (or when forced)."""
    litellm = litellm_module()  # callers run this in a worker thread: the import takes seconds
    try:
        name, provider, dynamic_key, dynamic_base = litellm.get_llm_provider(
            model=model, api_base=api_base, api_key=api_key
        )
    except Exception:
        return LitellmTransport(model, api_base, api_key, timeout)
    marks = provider in CACHE_CONTROL_PROVIDERS
    base = (
        api_base or dynamic_base or ("https://api.openai.com/v1" if provider == "openai" else None)
    )
    if force_litellm or provider not in OPENAI_COMPATIBLE or base is None:
        return LitellmTransport(model, api_base, api_key, timeout, cache_control=marks)
    key = (
        api_key
        or dynamic_key
        or (os.environ.get("OPENAI_API_KEY") if provider == "openai" else None)
    )
    return HTTPTransport(name, base, key, timeout)


def _could_not_connect(exc: BaseException) -> bool:
    """Whether the failure was the connection itself (refused, no route, no such host): litellm
    wraps it (as an InternalServerError, say), so look down the chain of causes."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionError | socket.gaierror) or type(seen).__name__ in (
            "ConnectError",
            "ClientConnectorError",
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def model_problem(
    model: str, api_base: str | None, api_key: str | None, *, keys: bool = True
) -> str | None:
    """Why litellm could not call this model string as configured, or None: a model whose
    provider it cannot tell, or (with ``keys``) a provider whose API key variable is unset (where
    a key is the only way in; cloud credentials such as AWS's have other sources, and are not
    checked)."""
    litellm = litellm_module()
    try:
        litellm.get_llm_provider(model=model, api_base=api_base, api_key=api_key)
    except Exception:
        return (
            f"litellm cannot tell which provider serves the model '{model}': name it as "
            f"provider/model (openai/{model}, anthropic/..., gemini/...; for an OpenAI-compatible "
            "server: openai/NAME with --api-base URL)"
        )
    if api_key or api_base or not keys:
        return None
    missing = litellm.validate_environment(model=model).get("missing_keys") or []
    if missing and all(name.endswith("_API_KEY") for name in missing):
        return f"the model '{model}' needs its API key: set {' or '.join(missing)}"
    return None
