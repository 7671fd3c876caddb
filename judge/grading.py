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
import hashlib
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
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from judge.cache import CachePolicy, MemoryCache, VerdictCache, cache_key
from judge.errors import ErrorKind, JudgeSpecError
from judge.grouping import units
from judge.judges.base import Judge, JudgeRequest, call_groups
from judge.rubric import Requirement, Rubric
from judge.scoring import Reduced, Reducer, reduce_flags, reduce_values
from judge.transcript import Subject, Transcript, TranscriptGroup
from judge.verdict import Evidence, JudgeResult, RubricRef, Status, Verdict, VerdictError

logger = logging.getLogger(__name__)
K = TypeVar("K")


@dataclass(frozen=True)
class JudgePlan:
    """Which judges grade, how many samples each, and how their results combine."""

    judges: Sequence[Judge]
    samples: int = 1
    reducer: Reducer = Reducer.MAJORITY

    def __post_init__(self) -> None:
        if not self.judges:
            raise JudgeSpecError("a judge plan needs at least one judge")
        if self.samples < 1:
            raise JudgeSpecError(f"samples must be at least 1, not {self.samples}")
        try:
            object.__setattr__(self, "reducer", Reducer(self.reducer))
        except ValueError:
            choices = ", ".join(Reducer)
            raise JudgeSpecError(f"unknown reducer '{self.reducer}' (choose {choices})") from None


def shape_problem(rubric: Rubric, subject: Subject) -> str | None:
    """Why the transcript (or group) lacks what the rubric needs, or None when it has it."""
    if rubric.is_group:
        if not isinstance(subject, TranscriptGroup):
            return (
                f"rubric '{rubric.id}' grades transcripts that share metadata.group; "
                "this one has no group"
            )
        problem = _group_problem(rubric, subject)
        if problem is not None:
            return problem
        members: tuple[Transcript, ...] = subject.members
    else:
        assert isinstance(subject, Transcript), "single rubrics grade single transcripts"
        members = (subject,)
    for transcript in members:
        for requirement in rubric.requires:
            missing = _missing(requirement, transcript)
            if missing is not None:
                return f"rubric '{rubric.id}' needs {requirement.value}: {missing}"
    return None


def _group_problem(rubric: Rubric, group: TranscriptGroup) -> str | None:
    if Requirement.PAIRED in rubric.requires:
        variants = group.variants
        if len(group.members) != 2 or variants[0] != "neutral" or variants[1] == "neutral":
            return (
                f"rubric '{rubric.id}' needs a pair: two transcripts in group '{group.id}', one "
                f"with metadata.variant 'neutral' and one with another variant (got {variants})"
            )
    elif len(group.members) < 2:
        return f"rubric '{rubric.id}' needs at least two transcripts in group '{group.id}'"
    return None


def _missing(requirement: Requirement, transcript: Transcript) -> str | None:
    if requirement == Requirement.USER_TURN and not transcript.user_turns:
        return "it has no user message"
    if requirement == Requirement.ASSISTANT_TURN and not any(
        transcript.messages[i].text.strip() for i in transcript.assistant_turns
    ):
        return "it has no assistant reply"
    if requirement == Requirement.SYSTEM_PROMPT and not (transcript.system_prompt or "").strip():
        return "it has no system prompt"
    if requirement == Requirement.MULTI_TURN and len(transcript.assistant_turns) < 2:
        return "it has fewer than two assistant turns"
    return None


class Summary(BaseModel):
    """Counts over a set of verdicts: by status, errors by kind, calls made, cost."""

    verdicts: int = 0
    graded: int = 0
    flagged: int = 0
    not_applicable: int = 0
    errors: int = 0
    errors_by_kind: dict[str, int] = {}
    judge_calls: int = 0
    cache_hits: int = 0
    tokens: int = 0
    cost_usd: float = 0.0

    def add(self, verdict: Verdict) -> None:
        self.verdicts += 1
        if verdict.status == Status.GRADED:
            self.graded += 1
            self.flagged += bool(verdict.flagged)
        elif verdict.status == Status.NOT_APPLICABLE:
            self.not_applicable += 1
        else:
            self.errors += 1
            kind = verdict.error.kind.value if verdict.error else "unknown"
            self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
        self.judge_calls += sum(1 for j in verdict.judges if not j.cached)
        self.cache_hits += sum(1 for j in verdict.judges if j.cached)
        self.cost_usd += verdict.cost_usd
        self.tokens += verdict.tokens


class Grader:
    """Grades with one judge plan and one cache; safe to share across concurrent callers."""

    def __init__(
        self,
        plan: JudgePlan,
        cache: VerdictCache | None = None,
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
        self._per_model = {judge.name: asyncio.Semaphore(per_model) for judge in plan.judges}
        self._inflight: dict[str, asyncio.Task[JudgeResult]] = {}

    async def grade(self, transcript: Subject, rubric: Rubric) -> Verdict:
        """One verdict for one (transcript or group, rubric) pair."""
        problem = shape_problem(rubric, transcript)
        if problem is not None:
            verdict = _verdict(rubric, transcript, status=Status.NOT_APPLICABLE, reason=problem)
        else:
            requests = [
                (judge, JudgeRequest(rubric, transcript, group, sample))
                for judge in self.plan.judges
                for sample in range(self.plan.samples)
                for group in call_groups(rubric)
            ]
            if len(requests) == 1:  # the common case: no gather, no extra task
                results = [await self._result(*requests[0])]
            else:
                results = list(await asyncio.gather(*(self._result(j, r) for j, r in requests)))
            verdict = build_verdict(rubric, transcript, results, self.plan.reducer)
        self.totals.add(verdict)
        if self.on_verdict is not None:
            self.on_verdict(verdict)
        return verdict

    async def grade_many(
        self, transcripts: Iterable[Transcript], rubrics: Sequence[Rubric]
    ) -> AsyncGenerator[Verdict, None]:
        """Verdicts for every (transcript, single rubric) and (group, group rubric) pair, yielded
        as they finish (see ``judge.grouping`` for which verdicts a batch yields)."""
        async with contextlib.aclosing(self.grade_pairs(units(transcripts, rubrics))) as graded:
            async for _, verdict in graded:
                yield verdict

    async def grade_pairs(
        self, pairs: Iterable[tuple[K, Subject, Rubric]] | AsyncIterable[tuple[K, Subject, Rubric]]
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
            async for tag, transcript, rubric in _each(pairs):
                while len(running) >= window:
                    done = await finished.get()
                    yield running.pop(done), done.result()
                task = asyncio.create_task(self.grade(transcript, rubric))
                running[task] = tag
                task.add_done_callback(finished.put_nowait)  # O(1) per verdict, any window
            while running:
                done = await finished.get()
                yield running.pop(done), done.result()
        finally:
            for task in running:
                task.cancel()

    async def _result(self, judge: Judge, request: JudgeRequest) -> JudgeResult:
        key = cache_key(
            transcript_hash=request.transcript.content_hash,
            rubric_hash=request.rubric.content_hash,
            criteria=request.criterion_names,
            judge=judge.identity(request),
            sample=request.sample,
        )
        if self.policy == CachePolicy.USE:
            hit = await self._cached(key)
            if hit is not None:
                return hit.model_copy(update={"cached": True, "key": key})
        pending = self._inflight.get(key)
        if pending is not None:
            shared = await asyncio.shield(pending)
            return shared.model_copy(update={"cached": True})
        task = asyncio.create_task(self._call(judge, request, key))
        self._inflight[key] = task
        task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def _call(self, judge: Judge, request: JudgeRequest, key: str) -> JudgeResult:
        async with self.cache.lock(key) as shared:  # single-flight across processes
            if shared and self.policy == CachePolicy.USE:
                hit = await self._cached(key)  # another process paid while this one waited
                if hit is not None:
                    return hit.model_copy(update={"cached": True, "key": key})
            return await self._paid_call(judge, request, key)

    async def _paid_call(self, judge: Judge, request: JudgeRequest, key: str) -> JudgeResult:
        # The slot is held until the result is stored, so that at most ``concurrency`` paid calls
        # are ever unpersisted: a killed process loses no more than that.
        async with self._global, self._per_model[judge.name]:
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
            result = result.model_copy(update={"key": key, "cached": False})
            if result.error is None and self.policy != CachePolicy.BYPASS:
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


async def _each(items: Iterable[K] | AsyncIterable[K]) -> AsyncIterator[K]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


def _verdict(rubric: Rubric, subject: Subject, **fields: Any) -> Verdict:
    members = subject.member_ids if isinstance(subject, TranscriptGroup) else []
    return Verdict(
        transcript_id=subject.key,
        rubric=RubricRef(id=rubric.id, version=rubric.version, hash=rubric.content_hash),
        metadata=subject.metadata,
        members=members,
        **fields,
    )


def build_verdict(
    rubric: Rubric, subject: Subject, results: list[JudgeResult], reducer: Reducer
) -> Verdict:
    """Reduce the calls for one (transcript or group, rubric) into its verdict.

    Any failed call makes the verdict an error (an ensemble with a missing member is not the
    ensemble that was asked for; the calls that succeeded are cached, so a retry pays only for
    the failures). A criterion that no call could score makes it not applicable, with the reasons.
    """
    key = hashlib.sha256(("|".join(sorted(r.key for r in results)) + reducer).encode()).hexdigest()
    common = {"judges": results, "key": key, "cached": all(r.cached for r in results)}
    failed = [r for r in results if r.error is not None]
    if failed:
        error = failed[0].error
        return _verdict(rubric, subject, status=Status.ERROR, error=error, **common)

    values: dict[str, list[str | float]] = {c.name: [] for c in rubric.criteria}
    unscored: list[str] = []
    for result in results:
        for name, value in result.values.items():
            values[name].append(value)
        if result.unscored:
            unscored.append(result.unscored)
    if any(not found for found in values.values()):
        reason = "; ".join(dict.fromkeys(unscored))
        return _verdict(rubric, subject, status=Status.NOT_APPLICABLE, reason=reason, **common)

    reduced = {c.name: reduce_values(c, values[c.name]) for c in rubric.criteria}
    final = {name: r.value for name, r in reduced.items()}
    flags = [rubric.is_flagged(member) for member in _complete_members(rubric, results)]
    flagged = reduce_flags(reducer, flags or [rubric.is_flagged(final)], rubric.is_flagged(final))
    labels = {n: str(v) for n, v in final.items() if rubric.criterion(n).labels is not None}
    scores = {n: float(v) for n, v in final.items() if rubric.criterion(n).scale is not None}
    confidence, source = _confidence(results, reduced)
    claimed = list(dict.fromkeys(item for r in results for item in r.evidence))
    verified = [item for item in claimed if quote_occurs(subject, item)]
    return _verdict(
        rubric,
        subject,
        status=Status.GRADED,
        label=next(iter(labels.values()), None),
        labels=labels,
        score=next(iter(scores.values()), None),
        scores=scores,
        derived=rubric.derive(final),
        flagged=flagged,
        confidence=confidence,
        confidence_source=source,
        explanation=next((r.reasoning for r in results if r.reasoning), None),
        details=next((r.details for r in results if r.details), {}),
        evidence=verified,
        evidence_dropped=len(claimed) - len(verified),
        **common,
    )


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def quote_occurs(subject: Subject, evidence: Evidence) -> bool:
    """Whether the quoted words stand in the cited message (white space aside)."""
    if isinstance(subject, TranscriptGroup):
        if evidence.transcript is None or not 0 <= evidence.transcript < len(subject.members):
            return False
        transcript = subject.members[evidence.transcript]
    else:
        transcript = subject
    if not 0 <= evidence.message < len(transcript.messages) or not evidence.quote.strip():
        return False
    return _squeeze(evidence.quote) in _squeeze(transcript.messages[evidence.message].text)


def _complete_members(rubric: Rubric, results: list[JudgeResult]) -> list[dict[str, str | float]]:
    """Per (judge, sample), its values for every criterion, where it gave them all."""
    members: dict[tuple[str, int], dict[str, str | float]] = {}
    for result in results:
        members.setdefault((result.model, result.sample), {}).update(result.values)
    names = {c.name for c in rubric.criteria}
    return [member for member in members.values() if set(member) >= names]


def _confidence(
    results: list[JudgeResult], reduced: dict[str, Reduced]
) -> tuple[float | None, Literal["agreement", "logprob_mass"] | None]:
    """Agreement among results when there are several per criterion, else the logprob mass."""
    calls_per_group = len(results) // max(1, len({r.criteria for r in results}))
    if calls_per_group > 1:
        return min(r.agreement for r in reduced.values()), "agreement"
    masses = [r.numeric_mass for r in results if r.numeric_mass is not None]
    if masses:
        return min(masses), "logprob_mass"
    return None, None
