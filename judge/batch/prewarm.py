"""Provider batch mode: the calls of a run that the cache does not hold go out as provider batches
(half the live price), and their replies, read exactly as live replies, fill the cache before the
normal grading pass, which then answers from it.

    1. every LLM call the plan makes for the units is counted, in order, into a digest: the run's
       identity, under which the ledger keeps its batches (a rerun or a restarted server finds
       them and polls them instead of submitting again);
    2. the calls not in the cache (each key once) are written per judge to JSONL files of at most
       ``max_requests`` lines and ``max_bytes``; each is uploaded, submitted and recorded in the
       ledger at once with the positions of the judge's calls it covers (never sent again);
    3. the batches are polled every ``poll_seconds`` until each has finished;
    4. their output lines are read as live replies (``LLMJudge.judge_reply``: priced at the batch
       rate, re-asked live when invalid) and every successful result is cached, marked with its
       batch. Requests that failed, expired or never ran are not cached: the grading pass asks
       them live.

A batch the provider failed as a whole (it refused the input) raises ``BatchError`` once the
others are read, rather than silently paying the live price for every call it held; it is dropped
from the ledger, so a rerun submits its calls again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from judge.batch.api import ENDPOINT, BatchAPI, BatchStatus
from judge.batch.state import BatchState, Ledger, SubmittedBatch
from judge.cache import CallCache
from judge.errors import BatchError
from judge.grading import each
from judge.grouping import Unit
from judge.judges.llm import LLMJudge
from judge.plan import JudgePlan, PlannedCall
from judge.shape import shape_problem
from judge.transports import Completion, HTTPTransport, TransportError, parse_completion, resolve
from judge.verdict import Verdict

logger = logging.getLogger(__name__)

Units = Callable[[], Iterable[Unit] | AsyncIterable[Unit]]
"""Makes the run's units afresh: the calls are listed three times (identity, submission, read)."""
Report = Callable[[str], None]

BATCH_WITHOUT_BUDGET = (
    "batch mode cannot keep to a budget (a batch is paid for whole, and its calls are counted "
    "only when it has finished): estimate first with a dry run, or grade live with the budget"
)


@dataclass(frozen=True)
class BatchOptions:
    """How batches are made and watched. OpenAI takes at most 50,000 requests and 200 MB a file."""

    poll_seconds: float = 30.0
    max_requests: int = 50_000
    max_bytes: int = 190 * 2**20
    concurrency: int = 16
    """Replies read at once (an invalid one is re-asked live)."""


class Prewarmed:
    """What a prewarm's batches paid for in this run. ``settle`` marks a verdict's calls that a
    batch answered as paid here (``cached: false``; each key once, as the engine counts a call),
    so the run's counts and cost include them at the batch rate."""

    def __init__(self, paid: set[str], state: BatchState | None):
        self.paid = paid
        self.state = state

    def settle(self, verdict: Verdict) -> Verdict:
        if not self.paid:
            return verdict
        judges = list(verdict.judges)
        for index, result in enumerate(judges):
            if result.cached and result.key in self.paid:
                self.paid.discard(result.key)
                judges[index] = result.model_copy(update={"cached": False})
        if judges == verdict.judges:
            return verdict
        cached = all(result.cached for result in judges)
        return verdict.model_copy(update={"judges": judges, "cached": cached})


def batch_endpoint(judge: LLMJudge) -> HTTPTransport | None:
    """Where an LLM judge's batches go: its OpenAI-compatible endpoint, or None when its provider
    is reached another way (through litellm: no batch API this speaks). Resolving imports
    litellm: call it in a thread."""
    transport = resolve(
        judge.model, judge.api_base, judge.api_key, judge.timeout, force_litellm=False
    )
    return transport if isinstance(transport, HTTPTransport) else None


async def endpoints(plan: JudgePlan) -> dict[int, HTTPTransport]:
    """The OpenAI-compatible endpoint of each LLM judge of the plan, by its index in the plan;
    ``BatchError`` for a judge whose provider has no batch API this supports, or no LLM judge."""
    if plan.escalation is not None:
        raise BatchError(
            "batch mode does not run cascades: which calls a later stage makes depends on the "
            "answers of the one before; grade the cascade live (its first stage decides most "
            "calls for free) or batch one judge"
        )
    found: dict[int, HTTPTransport] = {}
    for index, judge in enumerate(plan.judges):
        if not isinstance(judge, LLMJudge):
            continue
        transport = await asyncio.to_thread(batch_endpoint, judge)
        if transport is None:
            raise BatchError(
                f"the judge '{judge.model}' is not on an OpenAI-compatible endpoint: batch mode "
                "speaks OpenAI's Batch API (OpenAI and servers that copy it; Anthropic's Message "
                "Batches are not supported): grade it live"
            )
        found[index] = transport
    if not found:
        raise BatchError(
            "batch mode needs an LLM judge (--model): the offline judge makes no paid calls"
        )
    return found


async def prewarm(
    units: Units,
    plan: JudgePlan,
    cache: CallCache,
    ledger: Ledger,
    options: BatchOptions | None = None,
    report: Report | None = None,
) -> Prewarmed:
    """Cache what provider batches answer for the units' uncached calls (see the module)."""
    run = _Run(units, plan, cache, ledger, options or BatchOptions(), report or logger.info)
    run.transports = await endpoints(plan)
    try:
        return await run.go()
    finally:
        await run.aclose()


async def cancel_batches(plan: JudgePlan, state: BatchState) -> None:
    """Ask the provider to stop the unfinished batches of a state (a cancelled job's)."""
    transports = await endpoints(plan)
    for entry in state.batches:
        transport = transports.get(entry.judge)
        if entry.finished or transport is None:
            continue
        api = BatchAPI(transport.api_base, transport.api_key)
        try:
            await api.cancel(entry.id)
        except BatchError:
            logger.exception("could not cancel batch %s", entry.id)
        finally:
            await api.aclose()


class _Chunk:
    """The input file of one batch being written: requests of one judge from ``start`` on."""

    def __init__(self, judge: int, start: int, path: Path):
        self.judge = judge
        self.start = start
        self.path = path
        self.lines = 0
        self.bytes = 0
        self.handle: IO[bytes] = path.open("wb")

    def write(self, line: bytes) -> None:
        self.handle.write(line)
        self.lines += 1
        self.bytes += len(line)


class _Run:
    def __init__(
        self,
        units: Units,
        plan: JudgePlan,
        cache: CallCache,
        ledger: Ledger,
        options: BatchOptions,
        report: Report,
    ):
        self.units = units
        self.plan = plan
        self.cache = cache
        self.ledger = ledger
        self.options = options
        self.report = report
        self.transports: dict[int, HTTPTransport] = {}
        self.state = BatchState(calls="")
        self._apis: dict[int, BatchAPI] = {}

    def api(self, judge: int) -> BatchAPI:
        if judge not in self._apis:
            transport = self.transports[judge]
            self._apis[judge] = BatchAPI(transport.api_base, transport.api_key)
        return self._apis[judge]

    async def aclose(self) -> None:
        for api in self._apis.values():
            await api.aclose()

    async def go(self) -> Prewarmed:
        digest = hashlib.sha256()
        async for judge, call in self.calls():
            digest.update(f"{judge}:{call.key}\n".encode())
        calls = digest.hexdigest()
        self.state = await self.ledger.load(calls) or BatchState(calls=calls)
        if self.state.read:
            self.report("batches: already read into the cache; what they missed is graded live")
            return Prewarmed(set(), self.state)
        if self.state.batches:
            ids = ", ".join(b.id for b in self.state.batches)
            self.report(f"batches: resuming {ids}")
        for _ in range(3):  # again only for batches the endpoint no longer knows
            with tempfile.TemporaryDirectory(prefix="judge-batch-") as directory:
                await self.submit(Path(directory))
            if not self.state.batches:
                self.report("batches: nothing to submit, every call is cached")
                return Prewarmed(set(), self.state)
            if await self.poll():
                break
        else:
            raise BatchError("the endpoint keeps forgetting the batches it was sent")
        return Prewarmed(await self.read(), self.state)

    async def calls(self) -> AsyncIterator[tuple[int, PlannedCall]]:
        """The plan's calls of batchable judges for the units, in order, with the judge's index."""
        index = {id(self.plan.judges[i]): i for i in self.transports}
        async for _, subject, rubric in each(self.units()):
            if shape_problem(rubric, subject) is not None:
                continue
            for call in self.plan.calls(subject, rubric):
                judge = index.get(id(call.judge))
                if judge is not None:
                    yield judge, call

    async def submit(self, directory: Path) -> None:
        """Write the uncached calls not in a recorded batch to input files; submit each."""
        chunks: dict[int, _Chunk] = {}
        try:
            await self._submit(directory, chunks)
        finally:
            for chunk in chunks.values():
                chunk.handle.close()

    async def _submit(self, directory: Path, chunks: dict[int, _Chunk]) -> None:
        positions: dict[int, int] = {}
        seen: set[str] = set()
        async for judge, call in self.calls():
            position = positions.get(judge, 0)
            positions[judge] = position + 1
            chunk = chunks.get(judge)
            if self.state.covers(judge, position):
                seen.add(call.key)  # asked in that batch already
                if chunk is not None:
                    await self.send(chunks.pop(judge), end=position)
                continue
            if chunk is None:
                chunk = chunks[judge] = _Chunk(judge, position, directory / f"{judge}-{position}")
            if call.key in seen or await self.cached(call.key):
                continue
            seen.add(call.key)
            line = self.line(judge, call)
            full = chunk.lines >= self.options.max_requests
            if chunk.lines and (full or chunk.bytes + len(line) > self.options.max_bytes):
                await self.send(chunk, end=position)
                chunk = chunks[judge] = _Chunk(judge, position, directory / f"{judge}-{position}")
            chunk.write(line)
        for judge in list(chunks):
            await self.send(chunks.pop(judge), end=positions[judge])

    async def cached(self, key: str) -> bool:
        try:
            return await self.cache.get(key) is not None
        except Exception:  # an unreadable entry is a miss, as for the engine
            logger.exception("could not read judge result %s from the cache", key)
            return False

    def line(self, judge: int, call: PlannedCall) -> bytes:
        llm = call.judge
        assert isinstance(llm, LLMJudge)
        ask = llm.ask(call.request)
        body = self.transports[judge].request_body(ask.messages, ask.params)
        request = {"custom_id": call.key, "method": "POST", "url": ENDPOINT, "body": body}
        return orjson.dumps(request) + b"\n"

    async def send(self, chunk: _Chunk, *, end: int) -> None:
        """Upload a finished input file and submit it (nothing when it holds no request), and
        record the batch in the ledger before anything else can happen."""
        chunk.handle.close()
        if not chunk.lines:
            return
        api = self.api(chunk.judge)
        file_id = await api.upload(chunk.path)
        batch = await api.create(file_id, {"source": "judge", "calls": self.state.calls[:16]})
        model = self.plan.judges[chunk.judge].name
        entry = SubmittedBatch(
            id=batch.id,
            model=model,
            status=batch.status,
            requests=chunk.lines,
            judge=chunk.judge,
            start=chunk.start,
            end=end,
        )
        self.state.batches.append(entry)
        await self.ledger.save(self.state)
        chunk.path.unlink()
        self.report(f"batch {batch.id}: {chunk.lines} requests to {model} submitted")

    async def poll(self) -> bool:
        """Poll until every batch has finished (True), or until one turns out unknown to its
        endpoint (a ledger from another account, or an expired record): it is dropped from the
        state, so its calls are submitted again (False)."""
        while True:
            changed = False
            for entry in [b for b in self.state.batches if not b.finished]:
                try:
                    batch = await self.api(entry.judge).get(entry.id)
                except BatchError as exc:
                    if exc.status == 404:
                        self.report(f"batch {entry.id}: unknown to the endpoint; submitting again")
                        self.state.batches.remove(entry)
                        await self.ledger.save(self.state)
                        return False
                    if not exc.transient:
                        raise
                    self.report(f"batch {entry.id}: {exc}; polling again")
                    continue
                counts = batch.request_counts
                now = (batch.status, counts.completed, counts.failed)
                if now != (entry.status, entry.completed, entry.failed):
                    entry.status, entry.completed, entry.failed = now
                    changed = True
                    self.report(
                        f"batch {entry.id}: {entry.status}, {entry.completed}/{entry.requests} "
                        f"done, {entry.failed} failed"
                    )
            if changed:
                await self.ledger.save(self.state)
            if all(b.finished for b in self.state.batches):
                return True
            await asyncio.sleep(self.options.poll_seconds)

    async def read(self) -> set[str]:
        """Read every finished batch's replies into the cache; the keys cached."""
        replies: dict[str, tuple[str, Completion]] = {}
        refused: list[str] = []
        for entry in self.state.batches:
            api = self.api(entry.judge)
            batch = await api.get(entry.id)
            if batch.status == BatchStatus.FAILED:
                refused.append(f"{entry.id}: {batch.problems()}")
                continue
            if batch.output_file_id is not None:
                async for line in api.lines(batch.output_file_id):
                    key, reply = _reply(line)
                    if isinstance(reply, Completion):
                        replies[key] = (entry.id, reply)
            if batch.error_file_id is not None:
                await self.errors(api, entry.id, batch.error_file_id)
        asked = sum(b.requests for b in self.state.batches if b.status != BatchStatus.FAILED)
        paid = await self.cache_replies(replies)
        if refused:
            self.state.batches = [b for b in self.state.batches if b.status != BatchStatus.FAILED]
            await self.ledger.save(self.state)
            raise BatchError(f"the provider failed the batch as a whole: {'; '.join(refused)}")
        self.state.read = True
        await self.ledger.save(self.state)
        self.report(
            f"batches read: {len(paid)} results cached; {asked - len(paid)} requests failed, "
            "expired or gave no valid result: graded live"
        )
        return paid

    async def errors(self, api: BatchAPI, batch_id: str, file_id: str) -> None:
        count, first = 0, ""
        async for line in api.lines(file_id):
            count += 1
            first = first or str(_reply(line)[1])
        self.report(f"batch {batch_id}: {count} requests failed or expired (first: {first[:200]})")

    async def cache_replies(self, replies: dict[str, tuple[str, Completion]]) -> set[str]:
        """Read each reply as a live one and cache the results, ``concurrency`` at once."""
        paid: set[str] = set()
        slots = asyncio.Semaphore(self.options.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        async for _, call in self.calls():
            found = replies.pop(call.key, None)
            if found is None or await self.cached(call.key):
                continue
            await slots.acquire()
            task = asyncio.create_task(self.cache_reply(call, *found, paid))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            task.add_done_callback(lambda _: slots.release())
        await asyncio.gather(*tasks)
        return paid

    async def cache_reply(
        self, call: PlannedCall, batch_id: str, completion: Completion, paid: set[str]
    ) -> None:
        judge = call.judge
        assert isinstance(judge, LLMJudge)
        try:
            result = await judge.judge_reply(call.request, completion)
        except Exception:  # a bug must not lose the other replies: this call is graded live
            logger.exception("could not read the batch reply for %s", call.key)
            return
        if result.error is not None:
            return
        result = result.model_copy(update={"key": call.key, "cached": False, "batch": batch_id})
        try:
            await self.cache.set(call.key, result)
        except Exception:
            logger.exception("could not store judge result %s in the cache", call.key)
            return
        paid.add(call.key)


def _reply(line: str) -> tuple[str, Completion | str]:
    """An output or error line: its key, and the reply or why there is none."""
    try:
        item = orjson.loads(line)
        key = str(item["custom_id"])
        response = item.get("response") or {}
        error = item.get("error")
        if error:
            return key, f"{error.get('code')}: {error.get('message')}"
        status, body = response.get("status_code"), response.get("body") or {}
        if status != 200:
            return key, f"HTTP {status}: {(body.get('error') or {}).get('message')}"
        return key, parse_completion(body)
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        return "", f"not a batch output line: {line[:100]}"
    except TransportError as exc:
        return key, str(exc)
