"""The API's requests as data, built once for both clients: ``Call`` (method, path, canonical JSON
body, headers, how to read the reply, whether it may be sent again) and one builder per endpoint.
No I/O here."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

from judge.cache import CachePolicy
from judge.estimate import Estimate
from judge.selection import JudgeSelection
from judge.transcript import Transcript
from judge.verdict import Verdict
from judge.wire import (
    GradeCreate,
    GradePublic,
    JobPublic,
    JudgesPublic,
    ReportCreate,
    ReportPublic,
    RubricPublic,
    RubricSummary,
)

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"
TranscriptLike = Transcript | Mapping[str, Any]
"""A ``Transcript``, or a record in chat or prompt/response format (as in a JSONL file)."""
JudgeLike = str | Sequence[str] | JudgeSelection | None
"""A profile name, a list of profile names or allow-listed models, or a full selection."""


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request of the API and how to read its reply."""

    method: str
    path: str
    read: Callable[[bytes], T]
    body: bytes | None = None
    params: dict[str, int | str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    resend: bool = True
    """Whether sending it again, after it may have reached the server, is harmless."""


def connection(base_url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    """The service's URL and the headers every request carries (the bearer key, when there is
    one), from the arguments or else ``JUDGE_URL`` and ``JUDGE_API_KEY``."""
    url = base_url or os.environ.get("JUDGE_URL") or DEFAULT_URL
    key = api_key or os.environ.get("JUDGE_API_KEY")
    headers = {"user-agent": "judge-client"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    return url.rstrip("/"), headers


def canonical(value: Any) -> bytes:
    """Canonical JSON: the same content gives the same bytes (the idempotency key's input)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def batch(
    transcripts: Iterable[TranscriptLike],
    rubrics: str | Sequence[str],
    judge: JudgeLike,
    cache: CachePolicy | str,
    max_cost_usd: float | None = None,
) -> dict[str, Any]:
    """A grading request's body, validated here so that a malformed one fails before it is sent;
    fields left at their defaults are left out."""
    request = GradeCreate(
        transcripts=[_record(t) for t in transcripts],
        rubrics=_names(rubrics),
        judge=_selection(judge),
        cache=CachePolicy(cache),
        max_cost_usd=max_cost_usd,
    )
    return request.model_dump(mode="json", exclude_defaults=True)


def grade(body: dict[str, Any]) -> Call[GradePublic]:
    """Never sent twice once it may have arrived: grading it again could pay twice."""
    return _post("/v1/grade", body, GradePublic.model_validate_json, resend=False)


def submit(body: dict[str, Any], idempotency_key: str | None) -> Call[JobPublic]:
    """Safe to send again: the key (the body's sha256 unless given) makes the server return the
    job the first attempt created."""
    key = idempotency_key or hashlib.sha256(canonical(body)).hexdigest()
    headers = {"idempotency-key": key}
    return _post("/v1/jobs", body, JobPublic.model_validate_json, headers=headers)


def estimate(body: dict[str, Any]) -> Call[Estimate]:
    """A dry run of a job: no job, no judge call, so safe to send again."""
    return _post("/v1/jobs", body, Estimate.model_validate_json, params={"dry_run": "true"})


def job(job_id: str) -> Call[JobPublic]:
    """Look at a job."""
    return Call("GET", f"/v1/jobs/{job_id}", JobPublic.model_validate_json)


def cancel(job_id: str) -> Call[JobPublic]:
    """Stop a job (its stored verdicts stay)."""
    return Call("POST", f"/v1/jobs/{job_id}/cancel", JobPublic.model_validate_json)


def delete(job_id: str) -> Call[None]:
    """Remove a job with its transcripts and verdicts."""
    return Call("DELETE", f"/v1/jobs/{job_id}", lambda _: None)


def verdicts(job_id: str, cursor: int) -> Call[None]:
    """The job's NDJSON stream after ``cursor`` verdicts; the client reads it as it arrives."""
    path = f"/v1/jobs/{job_id}/verdicts"
    return Call("GET", path, lambda _: None, params={"cursor": cursor})


def report(
    job_id: str | None,
    verdicts: Sequence[Verdict] | None,
    by: str | Sequence[str] | None,
    compare: tuple[str, str] | None,
) -> Call[ReportPublic]:
    given = {"job_id": job_id, "verdicts": verdicts, "compare": compare}
    fields: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if by is not None:
        fields["by"] = _names(by)
    body = ReportCreate(**fields).model_dump(mode="json", exclude_defaults=True)
    return _post("/v1/reports", body, ReportPublic.model_validate_json)


def rubric(rubric_id: str) -> Call[RubricPublic]:
    return Call("GET", f"/v1/rubrics/{rubric_id}", RubricPublic.model_validate_json)


RUBRICS = Call("GET", "/v1/rubrics", TypeAdapter(list[RubricSummary]).validate_json)
JUDGES = Call("GET", "/v1/judges", JudgesPublic.model_validate_json)


def _post(path: str, body: Any, read: Callable[[bytes], T], **call: Any) -> Call[T]:
    headers = {"content-type": "application/json", **call.pop("headers", {})}
    return Call("POST", path, read, body=canonical(body), headers=headers, **call)


def _names(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _selection(judge: JudgeLike) -> JudgeSelection:
    if judge is None or isinstance(judge, JudgeSelection):
        return judge or JudgeSelection()
    if isinstance(judge, str):
        return JudgeSelection(profile=judge)
    return JudgeSelection(models=list(judge))


def _record(transcript: TranscriptLike) -> dict[str, Any]:
    if isinstance(transcript, Transcript):
        return transcript.model_dump(mode="json", exclude_none=True)
    return dict(transcript)
