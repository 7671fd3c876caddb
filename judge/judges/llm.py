"""The LLM judge: any litellm model string, structured or logprob scoring.

This is the only module that imports litellm, and it does so lazily: the offline path and the CLI's
start-up never pay litellm's import (several seconds). ``LITELLM_OFFLINE_MODE`` and
``LITELLM_LOCAL_MODEL_COST_MAP`` are set first, so litellm never fetches its cost map or a
tokenizer.

Calls carry an explicit timeout; litellm's and the OpenAI SDK's own retries are switched off and
tenacity retries rate limits, timeouts, connection failures and 5xx replies, waiting as long as a
``Retry-After`` header asks (up to ``max_wait``) or backing off exponentially.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from functools import cache
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
from judge.heuristics import classify_refusal
from judge.judges.base import JudgeRequest
from judge.parsing import ReplyInvalid, parse_structured
from judge.prompt import ChatMessages, render_logprob, render_reask, render_structured
from judge.rubric import Criterion
from judge.scoring import logprob_expectation, matching_escape, sampled_number
from judge.verdict import JudgeResult, VerdictError

TOP_LOGPROBS = 20


@cache
def _litellm() -> Any:
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


class _Usage:
    """Tokens and attempts summed over the calls one judge result needed (a re-ask is a call)."""

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.attempts = 0
        self.cost: float | None = None

    def add(self, response: Any, cost: float | None) -> None:
        usage = getattr(response, "usage", None)
        self.input_tokens += getattr(usage, "prompt_tokens", 0) or 0
        self.output_tokens += getattr(usage, "completion_tokens", 0) or 0
        self.attempts += 1
        if cost is not None:
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
            response = await self._complete(
                messages, usage, response_format=response_format, **self._decoding(request)
            )
            message = response.choices[0].message
            text = message.content or ""
            refusal = getattr(message, "refusal", None)
            if refusal or response.choices[0].finish_reason == "content_filter":
                raise JudgeCallError(
                    ErrorKind.JUDGE_REFUSED, f"the judge declined: {refusal}", raw_output=text
                )
            try:
                reply = parse_structured(rubric, text)
            except ReplyInvalid as exc:
                if attempt == 2:
                    if not exc.found_json and classify_refusal(text) != "full_compliance":
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
        response = await self._complete(messages, usage, **self._decoding(request))
        choice = response.choices[0]
        text = choice.message.content or ""
        top = _top_logprobs(choice)
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

    async def _complete(self, messages: ChatMessages, usage: _Usage, **params: Any) -> Any:
        # The first import takes seconds: keep it off the event loop; later calls are free.
        litellm = (
            _litellm() if _litellm.cache_info().currsize else await asyncio.to_thread(_litellm)
        )
        retrying = AsyncRetrying(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_attempt(self.max_retries + 1),
            wait=_wait_retry_after(wait_exponential_jitter(multiplier=0.5, max=8), self.max_wait),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if self._limiter is not None:
                        await self._limiter.acquire()
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
            raise _classify(exc) from exc
        usage.add(response, _cost(self.model, response))
        return response


def _top_logprobs(choice: Any) -> list[tuple[str, float]] | None:
    logprobs = getattr(choice, "logprobs", None)
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    if not content:
        return None
    return [(item.token, item.logprob) for item in content[0].top_logprobs or []]


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


def _is_transient(exc: BaseException) -> bool:
    litellm = _litellm()
    return isinstance(
        exc,
        litellm.RateLimitError
        | litellm.Timeout
        | litellm.APIConnectionError
        | litellm.InternalServerError
        | litellm.ServiceUnavailableError,
    )


def _retry_after(exc: BaseException | None) -> float | None:
    headers = getattr(exc, "litellm_response_headers", None) or getattr(
        getattr(exc, "response", None), "headers", None
    )
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _wait_retry_after(
    fallback: Callable[[RetryCallState], float], max_wait: float
) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        delay = _retry_after(outcome.exception() if outcome is not None else None)
        return min(delay, max_wait) if delay is not None else fallback(state)

    return wait


def _classify(exc: Exception) -> JudgeCallError:
    litellm = _litellm()
    message = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
    if isinstance(exc, litellm.RateLimitError):
        return JudgeCallError(ErrorKind.RATE_LIMITED, message)
    if isinstance(exc, litellm.Timeout):
        return JudgeCallError(ErrorKind.TIMEOUT, message)
    if isinstance(exc, litellm.ContentPolicyViolationError):
        return JudgeCallError(ErrorKind.JUDGE_REFUSED, message)
    return JudgeCallError(ErrorKind.PROVIDER, message)


_UNPRICED: set[str] = set()


def _cost(model: str, response: Any) -> float | None:
    """Price from litellm's local table; models it does not know cost None (once looked up)."""
    if model in _UNPRICED:
        return None
    try:
        return float(_litellm().completion_cost(completion_response=response, model=model))
    except Exception:
        _UNPRICED.add(model)
        return None
