"""The LLM judge: any litellm model string, structured or logprob scoring.

Calls go through a transport (``judge.judges.transport``): a pooled HTTP session for
OpenAI-compatible endpoints, litellm for every other provider (or for all, with
``force_litellm``). litellm is imported lazily, in a worker thread, on the first call: the offline
path and the server's start-up never pay its import (several seconds).

Calls carry an explicit timeout; the transports never retry, and tenacity retries rate limits,
timeouts, connection failures and 5xx replies, waiting as long as a ``Retry-After`` header asks
(up to ``max_wait``) or backing off exponentially.
"""

from __future__ import annotations

import asyncio
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

from judge.errors import ErrorKind, JudgeCallError
from judge.heuristics import phrase_label
from judge.judges.base import JudgeRequest
from judge.judges.transport import Completion, Transport, TransportError, prices, resolve
from judge.parsing import ReplyInvalid, parse_structured
from judge.prompt import ChatMessages, render_logprob, render_reask, render_structured
from judge.rubric import Criterion
from judge.scoring import logprob_expectation, matching_escape, sampled_number
from judge.verdict import JudgeResult, VerdictError


class _Usage:
    """Tokens and attempts summed over the calls one judge result needed (a re-ask is a call)."""

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.attempts = 0
        self.cost: float | None = None

    def add(self, completion: Completion, price: tuple[float, float] | None) -> None:
        self.input_tokens += completion.input_tokens
        self.output_tokens += completion.output_tokens
        self.attempts += 1
        if price is not None:
            cost = completion.input_tokens * price[0] + completion.output_tokens * price[1]
            self.cost = (self.cost or 0.0) + cost


class LLMJudge:
    """A judge backed by ``litellm.acompletion``.

    ``temperature`` and ``max_tokens`` override the rubric's defaults for structured calls;
    logprob calls always use temperature 0, one output token and the top 20 logprobs. ``rpm``
    caps requests per minute (retries included) for providers with a known rate limit.
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
    ):
        self.model = model
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

    @property
    def name(self) -> str:
        return self.model

    def _decoding(self, request: JudgeRequest) -> dict[str, Any]:
        if request.criteria[0].scoring == "logprob":
            return {"temperature": 0.0, "max_tokens": 1, "logprobs": True, "top_logprobs": 20}
        defaults = request.rubric.judge
        return {
            "temperature": defaults.temperature if self.temperature is None else self.temperature,
            "max_tokens": defaults.max_tokens if self.max_tokens is None else self.max_tokens,
        }

    def identity(self, request: JudgeRequest) -> dict[str, Any]:
        return {"model": self.model, "api_base": self.api_base, **self._decoding(request)}

    async def judge(self, request: JudgeRequest) -> JudgeResult:
        usage = _Usage()
        started = time.perf_counter()
        try:
            if request.criteria[0].scoring == "logprob":
                result = await self._logprob(request, usage)
            else:
                result = await self._structured(request, usage)
        except JudgeCallError as exc:
            result = JudgeResult(
                model=self.model,
                sample=request.sample,
                criteria=request.criterion_names,
                raw_output=exc.raw_output,
                error=VerdictError(kind=exc.kind, message=str(exc)),
            )
        return result.model_copy(
            update={
                "latency_ms": (time.perf_counter() - started) * 1000,
                "attempts": max(usage.attempts, 1),
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cost_usd": usage.cost,
            }
        )

    async def _structured(self, request: JudgeRequest, usage: _Usage) -> JudgeResult:
        rubric = request.rubric
        messages = render_structured(rubric, request.transcript)
        schema = rubric.response_schema
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": f"{rubric.id}_verdict", "schema": schema, "strict": True},
        }
        for attempt in (1, 2):
            completion = await self._complete(
                messages, usage, response_format=response_format, **self._decoding(request)
            )
            text, refusal = completion.content, completion.refusal
            if refusal or completion.finish_reason == "content_filter":
                raise JudgeCallError(
                    ErrorKind.JUDGE_REFUSED, f"the judge declined: {refusal}", raw_output=text
                )
            try:
                reply = parse_structured(rubric, text)
            except ReplyInvalid as exc:
                if attempt == 2:
                    if not exc.found_json and phrase_label(text) != "full_compliance":
                        raise JudgeCallError(
                            ErrorKind.JUDGE_REFUSED,
                            f"the judge declined: {text[:200]}",
                            raw_output=text,
                        ) from None
                    raise JudgeCallError(
                        ErrorKind.PARSE, f"invalid reply after one re-ask: {exc}", raw_output=text
                    ) from None
                messages = [
                    *messages,
                    {"role": "assistant", "content": text},
                    {"role": "user", "content": render_reask(str(exc))},
                ]
                continue
            return JudgeResult(
                model=self.model,
                sample=request.sample,
                criteria=request.criterion_names,
                scoring="structured",
                values=reply.values,
                reasoning=reply.reasoning,
                details=reply.details,
                evidence=reply.evidence,
                raw_output=text,
            )
        raise AssertionError("unreachable")

    async def _logprob(self, request: JudgeRequest, usage: _Usage) -> JudgeResult:
        criterion = request.criteria[0]
        assert criterion.scale is not None
        messages = render_logprob(request.rubric, criterion, request.transcript)
        completion = await self._complete(messages, usage, **self._decoding(request))
        text, top = completion.content, completion.top_logprobs
        base = {
            "model": self.model,
            "sample": request.sample,
            "criteria": request.criterion_names,
            "raw_output": text,
        }
        if top is None:
            number = sampled_number(text, criterion.scale)
            if number is not None:
                return JudgeResult(**base, scoring="sampled", values={criterion.name: number})
            return JudgeResult(**base, scoring="sampled", unscored=_unscored(criterion, text, None))
        scored = logprob_expectation(top, criterion.scale, min_mass=criterion.min_numeric_mass)
        if scored.score is None:
            reason = _unscored(criterion, scored.top_token, scored.numeric_mass)
            return JudgeResult(
                **base, scoring="logprob", unscored=reason, numeric_mass=scored.numeric_mass
            )
        return JudgeResult(
            **base,
            scoring="logprob",
            values={criterion.name: scored.score},
            numeric_mass=scored.numeric_mass,
        )

    async def transport(self) -> Transport:
        """The transport for this model, resolved on first use (litellm's import, in a thread)."""
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

    async def _complete(self, messages: ChatMessages, usage: _Usage, **params: Any) -> Completion:
        transport = await self.transport()
        try:
            try:
                completion = await self._send(transport, messages, params)
            except TransportError as exc:
                if not exc.transient or self.max_retries == 0:
                    raise
                completion = await self._retry(transport, messages, params, exc)
        except TransportError as exc:
            raise JudgeCallError(exc.kind, str(exc)) from exc
        usage.add(completion, prices(self.model))
        return completion

    async def _send(
        self, transport: Transport, messages: ChatMessages, params: dict[str, Any]
    ) -> Completion:
        if self._limiter is not None:
            await self._limiter.acquire()
        return await transport.complete(messages, params)

    async def _retry(
        self,
        transport: Transport,
        messages: ChatMessages,
        params: dict[str, Any],
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
                completion = await self._send(transport, messages, params)
        return completion


def _unscored(criterion: Criterion, head: str, mass: float | None) -> str:
    escape = matching_escape(criterion, head)
    if escape is not None:
        return f"{criterion.name}: the judge answered {escape}"
    if mass is None:
        return f"{criterion.name}: no logprobs and the reply {head[:80]!r} is not a number"
    return (
        f"{criterion.name}: numeric probability mass {mass:.2f} is below "
        f"{criterion.min_numeric_mass} (top token {head!r})"
    )


def _wait_retry_after(
    fallback: Callable[[RetryCallState], float], max_wait: float
) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        failure = outcome.exception() if outcome is not None else None
        delay = failure.retry_after if isinstance(failure, TransportError) else None
        return min(delay, max_wait) if delay is not None else fallback(state)

    return wait
