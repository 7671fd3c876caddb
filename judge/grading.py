"""The grading engine: transcripts x rubrics -> verdicts, through the cache, one call at a time.

For each (transcript, rubric) the engine checks the transcript's shape, then makes one call per
judge, sample and call group of the rubric: cache lookup first; on a miss, single-flight (identical
calls in flight run once, whoever asked; across processes too, when the cache is shared and
offers a lock) under a global and a per-model concurrency limit. The
results are reduced into one verdict. ``grade`` never raises for a failed call: every pair gets a
verdict, graded, not applicable, or an error with a named kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Sequence,
)
from typing import Any, TypeVar

from judge.assembly import build_verdict, verdict_for
from judge.budget import Budget, worst_case_usd
from judge.cache import CachePolicy, CallCache, MemoryCache
from judge.errors import ErrorKind, JudgeSpecError
from judge.grouping import units
from judge.plan import JudgePlan, PlannedCall
from judge.rubric import Rubric
from judge.shape import shape_problem
from judge.transcript import Subject, Transcript
from judge.verdict import Cascade, JudgeResult, Status, Summary, Verdict, VerdictError

logger = logging.getLogger(__name__)
K = TypeVar("K")


class Grader:
    """Grades with one judge plan and one cache; safe to share across concurrent callers.

    Use it as an async context manager (``async with Grader(...) as grader:``), or call
    ``aclose``, to close its judges' connections and its cache when done.
    """

    def __init__(
        self,
        plan: JudgePlan,
        cache: CallCache | None = None,
        *,
        concurrency: int = 16,
        per_model_concurrency: int | None = None,
        policy: CachePolicy = CachePolicy.USE,
        on_verdict: Callable[[Verdict], Any] | None = None,
    ):
        if concurrency < 1:
            raise JudgeSpecError(f"concurrency must be at least 1, not {concurrency}")
        self.plan = plan
        self.cache = cache if cache is not None else MemoryCache()
        self.concurrency = concurrency
        self.policy = CachePolicy(policy)
        self.totals = Summary()
        self.on_verdict = on_verdict
        self._global = asyncio.Semaphore(concurrency)
        per_model = per_model_concurrency or concurrency
        self._per_model = {judge.name: asyncio.Semaphore(per_model) for judge in plan.all_judges}
        self._inflight: dict[str, asyncio.Task[JudgeResult]] = {}

    async def __aenter__(self) -> Grader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the plan's judges and the cache (on the event loop that used them)."""
        for judge in self.plan.all_judges:
            await judge.aclose()
        await self.cache.close()

    async def grade(
        self, transcript: Subject, rubric: Rubric, *, budget: Budget | None = None
    ) -> Verdict:
        """One verdict for one (transcript or group, rubric) pair; with a ``budget``, no call
        that could take the run past it is made (see ``judge.budget``)."""
        problem = shape_problem(rubric, transcript)
        if problem is not None:
            verdict = verdict_for(rubric, transcript, status=Status.NOT_APPLICABLE, reason=problem)
        elif self.plan.escalation is None:
            verdict = await self._stage(self.plan, transcript, rubric, budget)
        else:
            verdict = await self._cascade(transcript, rubric, budget)
        self.totals.add(verdict)
        if self.on_verdict is not None:
            self.on_verdict(verdict)
        return verdict

    async def _stage(
        self, plan: JudgePlan, transcript: Subject, rubric: Rubric, budget: Budget | None
    ) -> Verdict:
        """The verdict of one plan (one stage of a cascade), its calls made concurrently."""
        calls = plan.calls(transcript, rubric)
        if len(calls) == 1:  # the common case: no gather, no extra task
            results = [await self._answer(plan, calls[0], budget)]
        else:
            answers = (self._answer(plan, call, budget) for call in calls)
            results = list(await asyncio.gather(*answers))
        return build_verdict(rubric, transcript, results, plan.reducer)

    async def _answer(
        self, plan: JudgePlan, call: PlannedCall, budget: Budget | None
    ) -> JudgeResult:
        """The call's result; when its judge declines to grade, the same call on each of its
        fallbacks in turn, the answer recording who declined."""
        result = await self._result(call, budget)
        if not _declined(result):
            return result
        declined: list[JudgeResult] = []
        for fallback in plan.fallback_calls(call):
            declined.append(result)
            result = await self._result(fallback, budget)
            if not _declined(result):
                break
        return result.model_copy(update={"declined": declined}) if declined else result

    async def _cascade(self, transcript: Subject, rubric: Rubric, budget: Budget | None) -> Verdict:
        """Each stage in turn, until one is confident (or the last): its verdict, recording
        which stage decided, why, and what the stages before it returned."""
        escalated: list[JudgeResult] = []
        reasons: list[str] = []
        for stage in self.plan.stages:
            verdict = await self._stage(stage, transcript, rubric, budget)
            names = ", ".join(judge.name for judge in stage.judges)
            if stage.escalation is None:
                reasons.append(f"{names}: the last stage decides")
                break
            stands, why = stage_decides(verdict, stage.threshold(rubric))
            reasons.append(f"{names}: {why}")
            if stands:
                break
            escalated += verdict.judges
        cascade = Cascade(
            stage=len(reasons) - 1,
            judges=[judge.name for judge in stage.judges],
            reason="; ".join(reasons),
            escalated=escalated,
        )
        return verdict.model_copy(update={"cascade": cascade})

    async def grade_many(
        self,
        transcripts: Iterable[Transcript],
        rubrics: Sequence[Rubric],
        *,
        budget: Budget | None = None,
    ) -> AsyncGenerator[Verdict, None]:
        """Verdicts for every (transcript, single rubric) and (group, group rubric) pair, yielded
        as they finish (see ``judge.grouping`` for which verdicts a batch yields)."""
        pairs = self.grade_pairs(units(transcripts, rubrics), budget=budget)
        async with contextlib.aclosing(pairs) as graded:
            async for _, verdict in graded:
                yield verdict

    async def grade_pairs(
        self,
        pairs: Iterable[tuple[K, Subject, Rubric]] | AsyncIterable[tuple[K, Subject, Rubric]],
        *,
        budget: Budget | None = None,
    ) -> AsyncGenerator[tuple[K, Verdict], None]:
        """Grade (tag, transcript, rubric) triples; yield (tag, verdict) as each finishes.

        The input (an iterable, or an async one that reads from a store) is consumed lazily and
        at most four times ``concurrency`` pairs are in flight, so memory stays flat for any
        number of transcripts. The tag lets a caller (the job runner) tell which input a verdict
        belongs to.
        """
        window = self.concurrency * 4
        finished: asyncio.Queue[asyncio.Task[Verdict]] = asyncio.Queue()
        running: dict[asyncio.Task[Verdict], K] = {}
        try:
            async for tag, transcript, rubric in each(pairs):
                while len(running) >= window:
                    done = await finished.get()
                    yield running.pop(done), done.result()
                task = asyncio.create_task(self.grade(transcript, rubric, budget=budget))
                running[task] = tag
                task.add_done_callback(finished.put_nowait)  # O(1) per verdict, any window
            while running:
                done = await finished.get()
                yield running.pop(done), done.result()
        finally:
            for task in running:
                task.cancel()

    async def _result(self, call: PlannedCall, budget: Budget | None) -> JudgeResult:
        key = call.key
        if self.policy == CachePolicy.USE:
            hit = await self._cached(key)
            if hit is not None:
                return hit.model_copy(update={"cached": True, "key": key})
        pending = self._inflight.get(key)
        if pending is not None:
            shared = await asyncio.shield(pending)
            return shared.model_copy(update={"cached": True})
        task = asyncio.create_task(self._call(call, budget))
        self._inflight[key] = task
        task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def _call(self, call: PlannedCall, budget: Budget | None) -> JudgeResult:
        looking = self.policy == CachePolicy.USE
        async with self.cache.lock(call.key, look=looking) as stored:  # single flight
            if stored is not None:  # another process paid while this one waited
                return stored.model_copy(update={"cached": True, "key": call.key})
            return await self._paid_call(call, budget)

    async def _paid_call(self, call: PlannedCall, budget: Budget | None) -> JudgeResult:
        judge, request, key = call.judge, call.request, call.key
        # The slot is held until the result is stored, so that at most ``concurrency`` paid calls
        # are ever unpersisted: a killed process loses no more than that.
        async with self._global, self._per_model[judge.name]:
            reserved = 0.0
            if budget is not None:
                reserved = await asyncio.to_thread(worst_case_usd, call)
                if reserved and not budget.reserve(reserved):  # a free call never passes it
                    return _unpaid(call, budget.refusal())
            started = time.perf_counter()
            try:
                result = await judge.judge(request)
            except Exception as exc:  # a judge bug must not lose the transcript
                result = JudgeResult(
                    model=judge.name,
                    sample=request.sample,
                    criteria=request.criterion_names,
                    latency_ms=(time.perf_counter() - started) * 1000,
                    error=VerdictError(
                        kind=ErrorKind.PROVIDER, message=f"{type(exc).__name__}: {exc}"
                    ),
                )
            order = list(request.order)
            result = result.model_copy(update={"key": key, "cached": False, "order": order})
            if budget is not None:
                budget.settle(reserved, result.cost_usd or 0.0)
            if (result.error is None or _declined(result)) and self.policy != CachePolicy.BYPASS:
                try:
                    await self.cache.set(key, result)
                except Exception:  # a full disk must not cost the verdict just paid for
                    logger.exception("could not store judge result %s in the cache", key)
        return result

    async def _cached(self, key: str) -> JudgeResult | None:
        try:
            return await self.cache.get(key)
        except Exception:  # an unreadable entry is a miss, not a lost transcript
            logger.exception("could not read judge result %s from the cache", key)
            return None


def stage_decides(verdict: Verdict, threshold: float | None) -> tuple[bool, str]:
    """Whether a cascade stage's verdict stands (it is graded with at least the threshold's
    confidence), and why in words."""
    if verdict.status != Status.GRADED:
        kind = f" ({verdict.error.kind})" if verdict.error else ""
        return False, f"{verdict.status}{kind}, escalated"
    if threshold is None:
        return False, "the rubric gives it no cascade threshold, escalated"
    if verdict.confidence is None:
        return False, "no confidence, escalated"
    confidence = f"{verdict.confidence_source} {verdict.confidence:.3f}"
    if verdict.confidence >= threshold:
        return True, f"{confidence} >= {threshold}, stands"
    return False, f"{confidence} < {threshold}, escalated"


def _declined(result: JudgeResult) -> bool:
    return result.error is not None and result.error.kind == ErrorKind.JUDGE_REFUSED


def _unpaid(call: PlannedCall, error: VerdictError) -> JudgeResult:
    request = call.request
    return JudgeResult(
        model=call.judge.name,
        sample=request.sample,
        criteria=request.criterion_names,
        attempts=0,
        key=call.key,
        order=list(request.order),
        error=error,
    )


async def each(items: Iterable[K] | AsyncIterable[K]) -> AsyncIterator[K]:
    """A plain or an async iterable, iterated alike."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
