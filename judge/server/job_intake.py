"""Taking a job in (``POST /v1/jobs``): the body read as a stream, in flat memory at any size.

Two bodies are accepted. JSON (``application/json``, the default): the object ``/v1/grade`` takes,
decoded by ``judge.json_stream`` as strictly as every other body, its transcripts one at a time.
NDJSON (``application/x-ndjson``): the job spec (that object without ``transcripts``) on the first
line, then one transcript record a line, each decoded by ``judge.json_input.loads``; blank lines
are skipped. Each record is checked as ``/v1/grade`` checks it (``parse_record`` within
``max_transcript_chars``: a bad one is a 422 naming its index and field) and stored in batches
while the body arrives, in an intake nobody sees (``JobStore.open_intake``). The job is queued
only once the whole body is good: a body refused at any point, or a client gone half way, leaves
nothing behind. A job whose spending is capped (``max_cost_usd``, or its profile's cap) is one
part (``JobShape``), so that one runner at a time grades it against one budget; so is a
batch-mode job, whose provider batches one runner keeps.

A dry run (``estimate_body``) reads and checks a body the same way but keeps its transcripts in
memory for ``judge.estimate`` and stores nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from judge.batch import BATCH_WITHOUT_BUDGET, endpoints
from judge.cache import CachePolicy
from judge.errors import BatchError, JudgeSpecError, TooLargeError, TranscriptError
from judge.estimate import Estimate, estimate
from judge.grouping import units
from judge.jobs.store import JobMode, JobRecord, JobShape, JobSpec
from judge.json_input import JSONInputError, check, loads
from judge.json_stream import JSONObjectStream
from judge.rubric import Rubric
from judge.server.intake import rubrics_for
from judge.server.json_route import is_json, media_type
from judge.server.state import ServerState
from judge.transcript import Transcript
from judge.transcript_files import parse_record

BATCH = 500
"""Transcripts stored per write (one SQLite transaction, one Redis round trip)."""

JSON = "application/json"
NDJSON = "application/x-ndjson"


def body_kind(content_type: str | None) -> str:
    """``JSON`` or ``NDJSON`` for a Content-Type (none: JSON); 415 for anything else."""
    kind = media_type(content_type) if content_type else JSON
    if kind == NDJSON:
        return NDJSON
    if is_json(kind):
        return JSON
    raise HTTPException(415, f"a job is sent as {JSON} or {NDJSON}, not {content_type!r}")


async def take_in(
    state: ServerState, kind: str, body: AsyncIterator[bytes], idempotency_key: str | None
) -> tuple[JobRecord, bool]:
    """Read, check and store a job's body; the job (True), or the one an earlier request with
    this Idempotency-Key made (False)."""
    intake = _Intake(state, await asyncio.to_thread(state.store.open_intake))
    try:
        if kind == NDJSON:
            spec, rubrics = await intake.ndjson(body)
        else:
            spec, rubrics = await intake.json(body)
        await _check_batchable(state, spec)
        return await intake.commit(spec, rubrics, idempotency_key)
    except BaseException:
        await asyncio.shield(intake.drop())
        raise


async def estimate_body(state: ServerState, kind: str, body: AsyncIterator[bytes]) -> Estimate:
    """What a job of this body would take and cost, as ``judge.estimate`` counts it: the body
    read and checked as ``take_in`` reads it; no job, no judge call."""
    intake = _Intake(state, None)
    if kind == NDJSON:
        spec, rubrics = await intake.ndjson(body)
    else:
        spec, rubrics = await intake.json(body)
    await _check_batchable(state, spec)
    intake.any_transcripts()
    grader = state.pool.grader(spec.judge, spec.cache)
    return await estimate(units(intake.kept, rubrics), grader.plan, grader.cache, spec.cache)


async def _check_batchable(state: ServerState, spec: JobSpec) -> None:
    """A batch-mode job needs LLM judges on an OpenAI-compatible batch API, and the cache (the
    batches fill it, the grading pass reads it); no budget, as a batch is paid for whole."""
    if spec.mode != JobMode.BATCH:
        return
    if spec.cache != CachePolicy.USE:
        raise JudgeSpecError(
            "mode 'batch' fills the cache from provider batches and grades from it: "
            "leave out 'cache' or set it to 'use'"
        )
    if state.pool.budget(spec.judge, spec.max_cost_usd) is not None:  # asked, or the profile's
        raise JudgeSpecError(BATCH_WITHOUT_BUDGET)
    try:
        await endpoints(state.pool.grader(spec.judge, spec.cache).plan)
    except BatchError as exc:
        raise JudgeSpecError(f"mode 'batch': {exc}") from None


class _Intake:
    """One job's body on its way into the store (``job_id``; None: a dry run, which keeps the
    transcripts instead): counts, the request's hash, a batch in writing while the next is
    read."""

    def __init__(self, state: ServerState, job_id: str | None):
        self.state = state
        self.job_id = job_id
        self.kept: list[Transcript] = []
        self.capped = False
        """Whether the job's spending is capped (a budget): then it is one part."""
        self.count = 0
        self.stored = 0
        self.groups: set[str] = set()
        self.ungrouped = 0
        self.rubric_count = 1  # until the spec says
        self.checked = False
        self.digest = hashlib.sha256()
        self.batch: list[str] = []
        self.writing: asyncio.Task[None] | None = None
        self.max_chars = state.settings.max_transcript_chars
        self.record_bytes = 8 * self.max_chars + 2**16
        """The most JSON a record may take (escapes, metadata): more is refused as it arrives."""

    def _too_long(self) -> TranscriptError:
        return TranscriptError(
            f"transcripts[{self.count}]: over {self.record_bytes} bytes of JSON; at most "
            f"{self.max_chars} characters are accepted per transcript (JUDGE_MAX_TRANSCRIPT_CHARS)"
        )

    async def json(self, body: AsyncIterator[bytes]) -> tuple[JobSpec, list[Rubric]]:
        stream = JSONObjectStream("transcripts")
        pending = 0  # bytes read since the last whole record
        try:
            async for chunk in body:
                records = stream.feed(chunk)
                pending = 0 if records else pending + len(chunk)  # within a chunk of it
                if pending > self.record_bytes:
                    raise self._too_long()
                for record in records:
                    await self.record(record, stream.fields)
                await _let_others_run()
            for record in stream.close():
                await self.record(record, stream.fields)
            check(stream.fields, controls=True)
        except JSONInputError as exc:
            raise _invalid(exc.field.split(".") if exc.field else [], str(exc)) from None
        fields = stream.fields
        if "transcripts" in fields:
            raise _invalid(["transcripts"], "Input should be a valid list")
        if not stream.streamed_array:
            raise _invalid(["transcripts"], "Field required")
        return self.spec(fields)

    async def ndjson(self, body: AsyncIterator[bytes]) -> tuple[JobSpec, list[Rubric]]:
        fields: dict[str, Any] | None = None
        number = 0
        async for line in _lines(body, self.record_bytes, self._too_long):
            number += 1
            if not line.strip():
                continue
            try:
                value = loads(line, controls=True)
            except JSONInputError as exc:
                where = ["transcripts", str(self.count)] if fields is not None else []
                field = exc.field.split(".") if exc.field else []
                raise _invalid([*where, *field], f"line {number}: {exc}") from None
            if fields is None:
                if not isinstance(value, dict):
                    raise _invalid([], f"line {number}: the first line is the job spec, a JSON "
                                   "object (the JSON body without its transcripts)")  # fmt: skip
                if "transcripts" in value:
                    raise _invalid(["transcripts"], f"line {number}: the transcripts follow the "
                                   "spec, one a line")  # fmt: skip
                fields = value
                continue
            await self.record(value, fields, line=number)
        if fields is None:
            raise _invalid([], "the body is empty; send the job spec, then a transcript a line")
        return self.spec(fields)

    async def record(self, value: Any, fields: dict[str, Any], line: int | None = None) -> None:
        """Check one transcript record and add it to the batch (the spec as known so far is
        checked at the first one, so that a bad rubric stops the body early)."""
        if not self.checked and "rubrics" in fields:
            self.spec(fields)
        index = self.count
        try:
            transcript = parse_record(value, line=line, max_chars=self.max_chars)
        except TranscriptError as exc:
            located = TranscriptError(f"transcripts[{index}]: {exc}")  # exc names the field
            located.field = exc.field
            raise located from None
        self.count += 1
        self._within_limit()
        if self.job_id is None:
            self.kept.append(transcript)
            return
        text = transcript.model_dump_json()
        self.digest.update(text.encode())
        self.digest.update(b"\n")
        group = transcript.metadata.get("group")
        if group is None:
            self.ungrouped += 1
        else:
            self.groups.add(str(group))
        self.batch.append(text)
        if len(self.batch) >= BATCH:
            await self._flush()

    def spec(self, fields: dict[str, Any]) -> tuple[JobSpec, list[Rubric]]:
        """The spec, its rubrics and judge, checked as ``/v1/grade`` checks them."""
        try:
            spec = JobSpec.model_validate(fields)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False)
            raise RequestValidationError(
                [{**error, "loc": ("body", *error["loc"])} for error in errors]
            ) from None
        spec = spec.model_copy(update={"rubrics": list(dict.fromkeys(spec.rubrics))})
        rubrics = rubrics_for(self.state, spec.rubrics)
        # checks the selection and, under a budget, its prices
        self.capped = self.state.pool.budget(spec.judge, spec.max_cost_usd) is not None
        self.rubric_count = len(rubrics)
        self.checked = True
        self._within_limit()
        return spec, rubrics

    def _within_limit(self) -> None:
        pairs = self.count * self.rubric_count
        limit = self.state.settings.max_job_pairs
        if pairs > limit:
            raise TooLargeError(
                f"{pairs} (transcript, rubric) pairs or more; a job takes at most {limit}: "
                "split the batch into several jobs"
            )

    async def _flush(self) -> None:
        await self._written()
        assert self.job_id is not None, "a dry run keeps its transcripts"
        batch, self.batch = self.batch, []
        start, self.stored = self.stored, self.stored + len(batch)
        add = self.state.store.add_transcripts
        self.writing = asyncio.create_task(asyncio.to_thread(add, self.job_id, start, batch))

    async def _written(self) -> None:
        if self.writing is not None:
            writing, self.writing = self.writing, None
            await writing

    def any_transcripts(self) -> None:
        if self.count == 0:
            raise _invalid(
                ["transcripts"], "List should have at least 1 item after validation, not 0"
            )

    async def commit(
        self, spec: JobSpec, rubrics: list[Rubric], idempotency_key: str | None
    ) -> tuple[JobRecord, bool]:
        assert self.job_id is not None, "a dry run commits nothing"
        self.any_transcripts()
        if self.batch:
            await self._flush()
        await self._written()
        singles = sum(1 for rubric in rubrics if not rubric.is_group)
        subjects = len(self.groups) + self.ungrouped  # what a group rubric grades (grouping.py)
        total = self.count * singles + (len(rubrics) - singles) * subjects
        live = spec.mode == JobMode.LIVE  # a live job's hash is as it was before modes
        described = spec.model_dump_json(exclude={"mode"} if live else None)
        request = f"{described}\n{self.digest.hexdigest()}"
        # one runner keeps a budget, or a job's batches: such a job is one part
        whole = self.capped or not live
        shape = JobShape(total) if whole else JobShape.of(total, self.count, rubrics)
        return await asyncio.to_thread(
            self.state.store.commit,
            self.job_id,
            spec,
            shape,
            request_hash=hashlib.sha256(request.encode()).hexdigest(),
            idempotency_key=idempotency_key,
        )

    async def drop(self) -> None:
        """Remove what was stored: the write under way first, so none lands after."""
        with contextlib.suppress(Exception):  # a write that failed stored nothing
            await self._written()
        assert self.job_id is not None
        await asyncio.to_thread(self.state.store.discard, self.job_id)


async def _lines(
    body: AsyncIterator[bytes], limit: int, too_long: Callable[[], Exception]
) -> AsyncIterator[bytes]:
    """The body's lines (without their ends), as they arrive; a line over ``limit`` bytes is
    refused before it is read whole."""
    rest = b""
    async for chunk in body:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        if len(rest) > limit:
            raise too_long()
        for line in lines:
            yield line
        await _let_others_run()
    if rest:
        yield rest


async def _let_others_run() -> None:
    """Yield to the event loop once a chunk of the body is taken in: a client that sends
    faster than records are checked keeps every read ready, so nothing else (``/readyz``,
    other requests) would run until the body ends."""
    await asyncio.sleep(0)


def _invalid(where: list[str], message: str) -> RequestValidationError:
    """A 422 located in the body, as FastAPI words its own (``body.transcripts.3.prompt``)."""
    return RequestValidationError(
        [{"type": "json_invalid", "loc": ("body", *where), "msg": message}]
    )
