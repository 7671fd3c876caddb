"""The LLM judge: any litellm model string, structured or logprob scoring (what it asks and how
it reads replies: ``judge.judges.exchange``).

Calls go through a transport (``judge.transports``): a pooled HTTP session for
OpenAI-compatible endpoints, litellm for every other provider (or for all, with
``force_litellm``); ``aclose`` releases it. litellm is imported lazily, in a worker thread, on
the first call: the offline path and the server's start-up never pay its import (seconds).

Calls carry an explicit timeout; the transports never retry, and tenacity retries rate limits,
timeouts, connection failures and 5xx replies, waiting as long as a ``Retry-After`` header asks
(up to ``max_wait``) or backing off exponentially.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from judge.cost import Prices, prices
from judge.errors import JudgeCallError
from judge.judges.base import JudgeRequest
from judge.judges.exchange import LOGPROB_DECODING, Ask, Reask, first_ask, is_logprob, read
from judge.transports import Completion, Transport, TransportError, resolve
from judge.transports.breaker import CircuitBreaker
from judge.verdict import JudgeResult, VerdictError


class _Usage:
    """Tokens and attempts summed over the calls one judge result needed: every try counts as
    an attempt (a retry, a re-ask, one that failed); tokens and cost come from the replies."""

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.cached_input_tokens = 0
        self.attempts = 0
        self.cost: float | None = None

    def add(self, completion: Completion, price: Prices | None, *, batch: bool = False) -> None:
        self.input_tokens += completion.input_tokens
        self.output_tokens += completion.output_tokens
        self.cached_input_tokens += completion.cached_input_tokens
        if price is not None:
            cost = price.of(
                completion.input_tokens,
                completion.output_tokens,
                completion.cached_input_tokens,
                completion.cache_write_tokens,
                batch=batch,
            )
            self.cost = (self.cost or 0.0) + cost

    def stamp(self, result: JudgeResult, started: float) -> JudgeResult:
        """The result with what its calls took and cost."""
        return result.model_copy(
            update={
                "latency_ms": (time.perf_counter() - started) * 1000,
                "attempts": self.attempts,
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "cached_input_tokens": self.cached_input_tokens,
                "cost_usd": self.cost,
            }
        )


class LLMJudge:
    """A judge on any litellm model string.

    ``temperature`` and ``max_tokens`` override the rubric's defaults for structured calls;
    logprob calls always use temperature 0, one output token and the top 20 logprobs. ``rpm``
    caps requests per minute (retries included) for providers with a known rate limit.
    ``price`` overrides litellm's price table (a self-hosted model it does not know).
    """

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        max_wait: float = 60.0,
        rpm: float | None = None,
        force_litellm: bool = False,
        price: Prices | None = None,
    ):
        self.model = model
        self.price = price
        self.api_base = api_base
        self.api_key = api_key
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_wait = max_wait
        self._limiter = AsyncLimiter(rpm, 60) if rpm else None
        self.force_litellm = force_litellm
        self._transport: Transport | None = None
        self._breaker = CircuitBreaker(api_base or model)
        self._resolving = asyncio.Lock()

    @property
    def name(self) -> str:
        return self.model

    def _decoding(self, request: JudgeRequest) -> dict[str, Any]:
        if is_logprob(request):
            return LOGPROB_DECODING
        defaults = request.rubric.judge
        return {
            "temperature": defaults.temperature if self.temperature is None else self.temperature,
            "max_tokens": defaults.max_tokens if self.max_tokens is None else self.max_tokens,
        }

    def prices(self) -> Prices | None:
        """Dollars per token: the configured price, else litellm's table (None: unknown)."""
        return self.price or prices(self.model)

    def max_reply_tokens(self, request: JudgeRequest) -> int:
        """The longest reply a structured call allows (what a budget reserves)."""
        return int(self._decoding(request)["max_tokens"])

    def identity(self, request: JudgeRequest) -> dict[str, Any]:
        return {"model": self.model, "api_base": self.api_base, **self._decoding(request)}

    def ask(self, request: JudgeRequest) -> Ask:
        """The first request this judge sends for a call (what a dry run counts, what a
        provider batch holds)."""
        return first_ask(request, self._decoding(request))

    async def judge(self, request: JudgeRequest) -> JudgeResult:
        usage = _Usage()
        started = time.perf_counter()
        try:
            ask = self.ask(request)
            completion = await self._complete(ask, usage)
            result = await self._conclude(request, ask, completion, usage)
        except JudgeCallError as exc:
            result = self._failed(request, exc)
        return usage.stamp(result, started)

    async def judge_reply(self, request: JudgeRequest, completion: Completion) -> JudgeResult:
        """A call whose first reply came from a provider batch (priced at the batch rate): read
        it as a live reply, re-asking live when it does not validate."""
        usage = _Usage()
        usage.attempts = 1
        usage.add(completion, self.prices(), batch=True)
        started = time.perf_counter()
        try:
            result = await self._conclude(request, self.ask(request), completion, usage)
        except JudgeCallError as exc:
            result = self._failed(request, exc)
        return usage.stamp(result, started)

    async def _conclude(
        self, request: JudgeRequest, ask: Ask, completion: Completion, usage: _Usage
    ) -> JudgeResult:
        outcome = read(request, self.model, completion, final=is_logprob(request))
        if isinstance(outcome, Reask):  # one more try, told what was wrong
            again = dataclasses.replace(ask, messages=[*ask.messages, *outcome.messages])
            completion = await self._complete(again, usage)
            outcome = read(request, self.model, completion, final=True)
        assert isinstance(outcome, JudgeResult), "a final read gives a result or raises"
        return outcome

    def _failed(self, request: JudgeRequest, exc: JudgeCallError) -> JudgeResult:
        return JudgeResult(
            model=self.model,
            sample=request.sample,
            criteria=request.criterion_names,
            raw_output=exc.raw_output,
            error=VerdictError(kind=exc.kind, message=str(exc)),
        )

    async def transport(self) -> Transport:
        """The transport for this model, resolved on first use (litellm's import, in a thread)
        and once only, however many calls start together."""
        if self._transport is None:
            async with self._resolving:
                if self._transport is None:
                    self._transport = await asyncio.to_thread(
                        resolve,
                        self.model,
                        self.api_base,
                        self.api_key,
                        self.timeout,
                        force_litellm=self.force_litellm,
                    )
        return self._transport

    async def aclose(self) -> None:
        """Release the transport's connections; the judge reconnects if used again."""
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()

    async def _complete(self, ask: Ask, usage: _Usage) -> Completion:
        transport = await self.transport()
        try:
            try:
                completion = await self._send(transport, ask, usage)
            except TransportError as exc:
                if not exc.transient or self.max_retries == 0:
                    raise
                completion = await self._retry(transport, ask, usage, exc)
        except TransportError as exc:
            raise JudgeCallError(exc.kind, str(exc)) from exc
        usage.add(completion, self.prices())
        return completion

    async def _send(self, transport: Transport, ask: Ask, usage: _Usage) -> Completion:
        """One try, through the endpoint's circuit breaker (which fails it fast while open)."""
        self._breaker.check()
        if self._limiter is not None:
            await self._limiter.acquire()
        usage.attempts += 1
        try:
            completion = await transport.complete(ask.messages, ask.params, static=ask.static)
        except TransportError as exc:
            self._breaker.record(exc)
            raise
        self._breaker.record(None)
        return completion

    async def _retry(
        self,
        transport: Transport,
        ask: Ask,
        usage: _Usage,
        first: TransportError,
    ) -> Completion:
        """Retry a call whose first attempt failed transiently. The first attempt runs outside
        tenacity (its set-up costs more than the rest of a verdict's bookkeeping); tenacity is
        handed that failure as its own attempt 1, so waits and the attempt count are as if it
        had made every attempt."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, TransportError) and exc.transient),
            stop=stop_after_attempt(self.max_retries + 1),
            wait=_wait_retry_after(wait_exponential_jitter(multiplier=0.5, max=8), self.max_wait),
            reraise=True,
        )
        replay: list[TransportError] = [first]
        async for attempt in retrying:
            with attempt:
                if replay:
                    raise replay.pop()
                completion = await self._send(transport, ask, usage)
        return completion


def _wait_retry_after(
    fallback: Callable[[RetryCallState], float], max_wait: float
) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        failure = outcome.exception() if outcome is not None else None
        delay = failure.retry_after if isinstance(failure, TransportError) else None
        return min(delay, max_wait) if delay is not None else fallback(state)

    return wait
