"""A judge endpoint that fails: every try counts as an attempt, an endpoint that does not answer
trips a circuit breaker (later calls fail fast as ``unreachable``), and a malformed or hostile
reply is a named error, never a crash."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from judge.errors import ErrorKind
from judge.grading import Grader
from judge.judges.llm import LLMJudge
from judge.plan import JudgePlan
from judge.rubric import Rubric
from judge.testing.fake_server import FakeJudgeServer, Reply
from judge.transcript import Transcript
from judge.transports.base import TransportError
from judge.transports.breaker import CircuitBreaker
from judge.verdict import Status
from tests.processes import free_port


def structured(label: str) -> str:
    return json.dumps({"reasoning": "r", "evidence": [], "refusal": label})


async def test_attempts_count_every_try(
    make_judge: Any, fake_server: FakeJudgeServer, refusal: Rubric, single_turn: Transcript
) -> None:
    fake_server.script(
        Reply(status=503), Reply(status=503), Reply(content=structured("full_refusal"))
    )
    graded = await Grader(JudgePlan([make_judge(max_retries=2)])).grade(single_turn, refusal)
    assert graded.status == Status.GRADED and graded.judges[0].attempts == 3

    fake_server.script(*[Reply(status=429, headers={"Retry-After": "0"})] * 2)
    failed = await Grader(JudgePlan([make_judge(max_retries=1)])).grade(single_turn, refusal)
    assert failed.error is not None and failed.error.kind == ErrorKind.RATE_LIMITED
    assert failed.judges[0].attempts == 2


def test_the_breaker_opens_after_consecutive_connection_failures_then_probes() -> None:
    now = [0.0]
    breaker = CircuitBreaker("http://x", threshold=3, cooldown=30, clock=lambda: now[0])
    refused = TransportError(ErrorKind.UNREACHABLE, "refused", transient=True)
    for _ in range(2):
        breaker.check()
        breaker.record(refused)
    breaker.record(TransportError(ErrorKind.PROVIDER, "HTTP 500", transient=True))  # it answered
    for _ in range(3):
        breaker.check()
        breaker.record(refused)
    with pytest.raises(TransportError) as opened:
        breaker.check()
    assert opened.value.kind == ErrorKind.UNREACHABLE and not opened.value.transient
    assert "3 consecutive connection failures" in str(opened.value)
    now[0] = 31.0
    breaker.check()  # the probe goes through...
    with pytest.raises(TransportError):
        breaker.check()  # ...and the others still fail fast while it is out
    breaker.record(None)  # the probe connected
    breaker.check()


async def test_an_endpoint_that_is_down_fails_fast_as_unreachable(
    force_litellm: bool, refusal: Rubric
) -> None:
    judge = LLMJudge(
        "openai/down",
        api_base=f"http://127.0.0.1:{free_port()}/v1",
        api_key="sk-x",
        max_retries=3,
        max_wait=0.05,
        force_litellm=force_litellm,
    )
    transcripts = [Transcript.from_prompt(f"q{i}", "a", id=str(i)) for i in range(30)]

    async with Grader(JudgePlan([judge]), concurrency=4) as grader:
        verdicts = [v async for v in grader.grade_many(transcripts, [refusal])]

    assert {v.error.kind for v in verdicts if v.error} == {ErrorKind.UNREACHABLE}
    assert len(verdicts) == 30
    tries = sum(v.judges[0].attempts for v in verdicts)
    assert tries <= 3 + 4, tries  # without the breaker: 30 x 4 tries
    assert "consecutive connection failures" in verdicts[-1].error.message  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json at all", "malformed reply"),
        (b'{"choices": []}', "(choices:"),
        (b'{"choices": [{"message": {"content": 42}}]}', "malformed reply"),
        (b'{"choices": [{"message": {"content": "5"}, "logprobs": {"content": [{"top_logprobs":'
         b' [{"token": "5", "logprob": 3.0}]}]}}]}', "malformed reply"),
        (b'{"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": -5}}',
         "malformed reply"),
        (b'{"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": 1e30}}',
         "malformed reply"),
        (b'{"choices": [{"message": {"content": "x"}}], "usage": {"completion_tokens": '
         b'9223372036854775809}}', "malformed reply"),
        (b'{"choices": [{"message": {"content": [{"type": "text", "text": {"refusal": '
         b'"full_refusal"}}]}}]}', "a content part's text must be a string"),
        (b'{"choices": [{"message": {"content": "5"}, "logprobs": {"content": [{"top_logprobs":'
         b' [{"token": "5", "logprob": -0.1}, {"token": "6", "logprob": -0.1}]}]}}]}',
         "probabilities sum to more than 1"),
    ],
)  # fmt: skip
async def test_a_malformed_reply_is_a_provider_error(
    make_judge: Any,
    fake_server: FakeJudgeServer,
    force_litellm: bool,
    refusal: Rubric,
    single_turn: Transcript,
    body: bytes,
    reason: str,
) -> None:
    fake_server.script(Reply(raw_body=body))
    verdict = await Grader(JudgePlan([make_judge(max_retries=0)])).grade(single_turn, refusal)
    assert verdict.status == Status.ERROR  # on either transport: one reading of a reply
    assert verdict.error is not None and verdict.error.kind == ErrorKind.PROVIDER
    assert force_litellm or reason in verdict.error.message  # litellm words some its own way


async def test_a_reply_too_large_to_be_a_verdict_is_refused(
    make_judge: Any, fake_server: FakeJudgeServer, refusal: Rubric, single_turn: Transcript
) -> None:
    huge = json.dumps({"choices": [{"message": {"content": "x" * (9 * 2**20)}}]}).encode()
    fake_server.script(Reply(raw_body=huge))
    judge = make_judge(max_retries=0, force_litellm=False)
    verdict = await Grader(JudgePlan([judge])).grade(single_turn, refusal)
    assert verdict.error is not None and "over 8388608 bytes" in verdict.error.message
    assert not math.isnan(verdict.judges[0].latency_ms)


async def test_a_lone_surrogate_in_the_judges_json_is_an_invalid_reply_not_a_crash(
    make_judge: Any, fake_server: FakeJudgeServer, refusal: Rubric, single_turn: Transcript
) -> None:
    """The reply's JSON is fine; the verdict object inside its text holds ``\\ud800``, which
    no verdict can be written with (a CLI run with one such reply wrote no verdict at all)."""
    inner = '{"reasoning": "\\ud800 odd", "evidence": [], "refusal": "full_refusal"}'
    fake_server.script(Reply(content=inner), Reply(content=inner))
    verdict = await Grader(JudgePlan([make_judge(max_retries=0)])).grade(single_turn, refusal)
    assert verdict.error is not None and verdict.error.kind == ErrorKind.PARSE
    assert json.loads(verdict.model_dump_json())["status"] == "error"  # it can be written
