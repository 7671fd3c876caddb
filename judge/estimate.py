"""Dry runs: what grading would cost, found without a single judge call.

For each unit the engine would grade, the plan lists its calls with their cache keys
(``JudgePlan.calls``); a call already in the cache, or made earlier in the same run (identical
transcripts), is free. For each call to make, the LLM
judge's first request is rendered exactly as it would be sent, and its input tokens counted by the
model's tokenizer; output tokens are estimated from the rubric's own worked examples (what a reply
to it looks like; one token for a logprob call). Prices come from litellm's table; a model it
does not price is listed as unpriced, never counted as free. Re-asks, which only a reply can
cause, are not in the estimate.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterable, Iterable

from pydantic import BaseModel

from judge.cache import CachePolicy, CallCache
from judge.cost import count_tokens
from judge.grading import each
from judge.grouping import Unit
from judge.judges.base import JudgeRequest
from judge.judges.exchange import is_logprob
from judge.judges.llm import LLMJudge
from judge.plan import JudgePlan, PlannedCall
from judge.shape import shape_problem

DEFAULT_REPLY_TOKENS = 200
"""Expected reply tokens of a structured call when the rubric has no worked example."""


class ModelEstimate(BaseModel):
    """One judge model's share of a run."""

    model: str
    calls: int = 0
    cache_hits: int = 0
    calls_to_make: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    """None when litellm's table has no price for the model."""


class Estimate(BaseModel):
    """What grading would take: pairs, calls, cache hits, tokens and cost, per model too."""

    pairs: int = 0
    not_applicable: int = 0
    calls: int = 0
    cache_hits: int = 0
    calls_to_make: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    """Of the priced models; see ``unpriced_models``."""
    unpriced_models: list[str] = []
    models: list[ModelEstimate] = []


async def estimate(
    units: Iterable[Unit] | AsyncIterable[Unit],
    plan: JudgePlan,
    cache: CallCache,
    policy: CachePolicy = CachePolicy.USE,
) -> Estimate:
    """The estimate for grading these units with this plan and cache (see the module)."""
    result = Estimate()
    by_model: dict[str, ModelEstimate] = {}
    planned: set[str] = set()  # a call made once in a run serves its duplicates
    async for _, subject, rubric in each(units):
        result.pairs += 1
        if shape_problem(rubric, subject) is not None:
            result.not_applicable += 1
            continue
        counted: dict[tuple[str, tuple[str, ...]], int] = {}  # samples share their prompt
        for call in plan.calls(subject, rubric):
            model = by_model.setdefault(call.judge.name, ModelEstimate(model=call.judge.name))
            model.calls += 1
            if call.key in planned or (
                policy == CachePolicy.USE and await cache.get(call.key) is not None
            ):
                model.cache_hits += 1
                continue
            planned.add(call.key)
            model.calls_to_make += 1
            if isinstance(call.judge, LLMJudge):
                prompt = (call.judge.name, call.request.criterion_names)
                if prompt not in counted:
                    counted[prompt] = await asyncio.to_thread(input_tokens, call)
                _add(model, call, counted[prompt])
    for model in by_model.values():
        result.calls += model.calls
        result.cache_hits += model.cache_hits
        result.calls_to_make += model.calls_to_make
        result.input_tokens += model.input_tokens
        result.output_tokens += model.output_tokens
        if model.cost_usd is None:
            result.unpriced_models.append(model.model)
        else:
            result.cost_usd += model.cost_usd
    result.models = sorted(by_model.values(), key=lambda m: m.model)
    return result


def input_tokens(call: PlannedCall) -> int:
    """The tokens of the call's first request, rendered as it would be sent (CPU work: run it
    in a thread)."""
    judge = call.judge
    assert isinstance(judge, LLMJudge)
    return count_tokens(judge.model, judge.ask(call.request).messages)


def _add(model: ModelEstimate, call: PlannedCall, inputs: int) -> None:
    judge = call.judge
    assert isinstance(judge, LLMJudge)
    outputs = reply_tokens(judge, call.request)
    model.input_tokens += inputs
    model.output_tokens += outputs
    price = judge.prices()
    if price is None or model.cost_usd is None:
        model.cost_usd = None
    else:
        model.cost_usd += price.of(inputs, outputs)


def reply_tokens(judge: LLMJudge, request: JudgeRequest) -> int:
    """The reply a call is expected to get, in tokens: one for a logprob call; for a structured
    call, the mean of the rubric's worked example replies (at most the call's max_tokens)."""
    if is_logprob(request):
        return 1
    rubric, model = request.rubric, judge.model
    key = (model, rubric.content_hash)
    if key not in _REPLY_TOKENS:
        replies = [json.dumps(example.output) for example in rubric.examples]
        counts = [count_tokens(model, text=reply) for reply in replies]
        _REPLY_TOKENS[key] = round(sum(counts) / len(counts)) if counts else DEFAULT_REPLY_TOKENS
    return min(_REPLY_TOKENS[key], judge.max_reply_tokens(request))


_REPLY_TOKENS: dict[tuple[str, str], int] = {}
"""Expected reply tokens by (model, rubric content hash)."""
