"""Dry runs: what grading would cost, found without a single judge call.

For each unit the engine would grade, the plan lists its calls with their cache keys
(``JudgePlan.calls``); a call already in the cache, or made earlier in the same run (identical
transcripts), is free. For each call to make, the LLM judge's first request is rendered exactly
as it would be sent, and its input tokens counted by the model's tokenizer; output tokens are
estimated from the rubric's own worked examples (what a reply to it looks like; one token for a
logprob call). Prices come from the judge's profile or litellm's table; a model without a price
is listed as unpriced, never counted as free. Re-asks, which only a reply can cause, are not in
the estimate.

In a cascade, a stage whose answer is free to know (the offline judge, which is asked; the
cache) decides exactly which pairs go on to the next stage; after a paid stage, every pair is
counted for the next one too, and the estimate says it is an upper bound.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterable, Iterable

from pydantic import BaseModel

from judge.assembly import build_verdict
from judge.cache import CachePolicy, CallCache
from judge.cost import count_tokens
from judge.grading import each, stage_decides
from judge.grouping import Unit
from judge.judges.base import JudgeRequest
from judge.judges.exchange import is_logprob
from judge.judges.llm import LLMJudge
from judge.plan import JudgePlan, PlannedCall
from judge.shape import shape_problem
from judge.verdict import JudgeResult

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
    escalated: int = 0
    """Pairs a cascade's first stages would pass on (known where their answer is free: the
    offline judge, or the cache)."""
    upper_bound: bool = False
    """True when a cascade's later stage is counted for pairs that a paid earlier stage may
    decide: its answer cannot be known before it is paid for."""
    models: list[ModelEstimate] = []


async def estimate(
    units: Iterable[Unit] | AsyncIterable[Unit],
    plan: JudgePlan,
    cache: CallCache,
    policy: CachePolicy = CachePolicy.USE,
) -> Estimate:
    """The estimate for grading these units with this plan and cache (see the module)."""
    result = Estimate()
    tally = _Tally(cache, policy)
    async for _, subject, rubric in each(units):
        result.pairs += 1
        if shape_problem(rubric, subject) is not None:
            result.not_applicable += 1
            continue
        tally.counted.clear()  # samples share their prompt; only within one subject
        for stage in plan.stages:
            results = [await tally.call(call) for call in stage.calls(subject, rubric)]
            if stage.escalation is None:
                break
            known = [r for r in results if r is not None]
            if len(known) < len(results):  # a paid answer: the next stage may be needed
                result.upper_bound = True
                continue
            verdict = build_verdict(rubric, subject, known, stage.reducer)
            if stage_decides(verdict, stage.threshold(rubric))[0]:
                break
            result.escalated += 1
    for model in tally.by_model.values():
        result.calls += model.calls
        result.cache_hits += model.cache_hits
        result.calls_to_make += model.calls_to_make
        result.input_tokens += model.input_tokens
        result.output_tokens += model.output_tokens
        if model.cost_usd is None:
            result.unpriced_models.append(model.model)
        else:
            result.cost_usd += model.cost_usd
    result.models = sorted(tally.by_model.values(), key=lambda m: m.model)
    return result


class _Tally:
    """Counts one estimate's calls per model; answers what can be known for free."""

    def __init__(self, cache: CallCache, policy: CachePolicy):
        self.cache = cache
        self.policy = policy
        self.by_model: dict[str, ModelEstimate] = {}
        self.planned: set[str] = set()  # a call made once in a run serves its duplicates
        self.counted: dict[tuple[str, tuple[str, ...]], int] = {}

    async def call(self, call: PlannedCall) -> JudgeResult | None:
        """Count the call; its result when it is free to know (in the cache, or a judge that
        costs nothing, which is asked), else None."""
        name = call.judge.name
        model = self.by_model.setdefault(name, ModelEstimate(model=name))
        model.calls += 1
        if self.policy == CachePolicy.USE:
            hit = await self.cache.get(call.key)
            if hit is not None:
                model.cache_hits += 1
                return hit
        if call.key in self.planned:
            model.cache_hits += 1
        else:
            self.planned.add(call.key)
            model.calls_to_make += 1
            if isinstance(call.judge, LLMJudge):
                prompt = (name, call.request.criterion_names)
                if prompt not in self.counted:
                    self.counted[prompt] = await asyncio.to_thread(input_tokens, call)
                _add(model, call, self.counted[prompt])
        if isinstance(call.judge, LLMJudge):
            return None
        return await call.judge.judge(call.request)


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
