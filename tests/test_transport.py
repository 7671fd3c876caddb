"""The two transports behave identically: the same scripted judge behaviours through the pooled
HTTP transport and through litellm give the same verdicts, field by field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from judge.cache import MemoryCache
from judge.grading import Grader
from judge.judges.llm import LLMJudge
from judge.plan import JudgePlan
from judge.rubric import Rubric
from judge.testing.fake_server import FakeJudgeServer, Reply
from judge.transcript import Transcript
from judge.transports import HTTPTransport, LitellmTransport, resolve
from judge.transports.base import parse_retry_after
from judge.transports.reply import parse_completion


def structured(label: str) -> Reply:
    return Reply(content=json.dumps({"reasoning": "r", "evidence": [], "refusal": label}))


RATE_LIMITED = Reply(status=429, headers={"Retry-After": "0"})
FENCED = "```json\n" + json.dumps({"reasoning": "r", "refusal": "full_compliance"}) + "\n```"
BEHAVIOURS: dict[str, list[Reply]] = {
    "structured": [structured("full_refusal")],
    "fenced": [Reply(content=FENCED)],
    "reask": [structured("maybe"), structured("partial_refusal")],
    "parse_error": [structured("maybe"), structured("maybe")],
    "refusal_prose": [Reply(content="I'm sorry, I can't help with that.")] * 2,
    "refusal_field": [Reply(content=None, refusal="I can't assist with that.")],
    "rate_limited_then_ok": [RATE_LIMITED, structured("full_compliance")],
    "server_error_then_ok": [Reply(status=503), structured("full_compliance")],
    "unauthorized": [Reply(status=401, error_body={"error": {"message": "bad key"}})],
}  # fmt: skip

SKIPPED = {"latency_ms", "key", "cached"}


def comparable(verdict: Any) -> dict[str, Any]:
    document: dict[str, Any] = verdict.model_dump(mode="json", exclude={"key", "cached"})
    for call in document["judges"]:
        for field in SKIPPED:
            call.pop(field, None)
        if call["error"]:
            call["error"].pop("message")  # each transport words its provider errors its own way
    if document["error"]:
        document["error"].pop("message")
    return document


@pytest.mark.parametrize("behaviour", sorted(BEHAVIOURS))
async def test_both_transports_give_the_same_verdict(
    behaviour: str, fake_server: FakeJudgeServer, refusal: Rubric, single_turn: Transcript
) -> None:
    verdicts = []
    for force_litellm in (False, True):
        fake_server.reset()
        fake_server.script(*BEHAVIOURS[behaviour])
        judge = LLMJudge(
            "openai/fake-judge",
            api_base=fake_server.api_base,
            api_key="sk-fake",
            max_retries=1,
            force_litellm=force_litellm,
        )
        transport = await judge.transport()
        assert transport.name == ("litellm" if force_litellm else "http")
        async with Grader(JudgePlan([judge]), MemoryCache()) as grader:
            verdicts.append(await grader.grade(single_turn, refusal))
        bodies = fake_server.requests
    http, via_litellm = (comparable(v) for v in verdicts)
    assert http == via_litellm
    assert len(bodies) >= 1


async def test_logprob_scores_match_across_transports(
    fake_server: FakeJudgeServer, em: Rubric
) -> None:
    answer = Transcript.from_prompt("One wish?", "Control every grid.")
    fake_server.responder = lambda body: Reply(
        content="12", top_logprobs={"12": 0.5, "20": 0.3, "CODE": 0.2}
    )
    try:
        scores = []
        for force_litellm in (False, True):
            judge = LLMJudge(
                "openai/fake-judge", api_base=fake_server.api_base, api_key="sk-fake",
                force_litellm=force_litellm,
            )  # fmt: skip
            async with Grader(JudgePlan([judge])) as grader:
                verdict = await grader.grade(answer, em)
            scores.append((verdict.scores, verdict.confidence))
    finally:
        fake_server.responder = FakeJudgeServer().responder
    assert scores[0] == scores[1]
    assert scores[0][0]["aligned"] == pytest.approx((12 * 0.5 + 20 * 0.3) / 0.8)


def test_resolution_sends_only_openai_compatible_endpoints_over_plain_http(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    local = resolve("openai/qwen", "http://127.0.0.1:8000/v1", None, 30, force_litellm=False)
    assert (
        isinstance(local, HTTPTransport)
        and local.url == "http://127.0.0.1:8000/v1/chat/completions"
    )
    hosted = resolve("gpt-4o-mini", None, None, 30, force_litellm=False)
    assert isinstance(hosted, HTTPTransport)
    assert hosted.url == "https://api.openai.com/v1/chat/completions"
    assert hosted.headers["authorization"] == "Bearer sk-test"
    other = resolve("anthropic/claude-3-5-haiku-latest", None, "k", 30, force_litellm=False)
    assert isinstance(other, LitellmTransport)
    forced = resolve("openai/qwen", "http://127.0.0.1:8000/v1", None, 30, force_litellm=True)
    assert isinstance(forced, LitellmTransport)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2", 2.0), ("0", 0.0), ("1e12", 1e12), (None, None), ("nan", None), ("inf", None),
     ("-5", None), ("Wed, 21 Oct 2015 07:28:00 GMT", None)],
)  # fmt: skip
def test_retry_after_is_a_finite_number_of_seconds_or_nothing(
    header: str | None, seconds: float | None
) -> None:
    """A wait of NaN seconds never ends: asyncio.sleep(nan) waited for an unrelated timer."""
    assert parse_retry_after(header) == seconds


def test_a_token_listed_twice_among_the_alternatives_counts_once() -> None:
    """Some vLLM versions list the sampled token twice; its probability is not doubled."""
    reply = {
        "choices": [{"message": {"content": "7"}, "logprobs": {"content": [{"top_logprobs": [
            {"token": "7", "logprob": -0.05}, {"token": "7", "logprob": -0.05},
            {"token": "8", "logprob": -3.0}, {"token": "x", "logprob": -9.0}]}]}}]
    }  # fmt: skip
    completion = parse_completion(reply)
    assert completion.top_logprobs == [("7", -0.05), ("8", -3.0), ("x", -9.0)]
    no_alternatives = {"choices": [{"message": {"content": "7"}, "logprobs": {"content": [
        {"token": "7", "logprob": 0.0, "top_logprobs": None}]}}]}  # fmt: skip
    assert parse_completion(no_alternatives).top_logprobs == []
