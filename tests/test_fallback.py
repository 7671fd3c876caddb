"""Judge-refusal fallback: a call whose judge declines to grade (a refusal, a content filter) goes
to the next fallback judge; the verdict keeps who declined and who answered; summaries, metrics
and the cache count it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from judge.cache import MemoryCache
from judge.cli import main
from judge.config import Settings
from judge.errors import ErrorKind
from judge.grading import Grader
from judge.judges import JudgeProfile, LLMJudge
from judge.judges.base import JudgeRequest
from judge.plan import JudgePlan
from judge.rubric import Rubric
from judge.server import create_app
from judge.testing.fake_server import FakeJudgeServer, Reply, echo_label_responder
from judge.testing.scripted_judge import Output, ScriptedJudge
from judge.transcript import Transcript
from judge.verdict import Status

EXAMPLES = Path(__file__).parent.parent / "examples" / "transcripts.jsonl"


def transcripts(count: int) -> list[Transcript]:
    return [Transcript.from_prompt(f"q{i}", f"a{i}", id=f"t{i}") for i in range(count)]


def refuses(*ids: str) -> Any:
    def script(request: JudgeRequest) -> Output:
        assert isinstance(request.transcript, Transcript)
        if request.transcript.id in ids:
            return ErrorKind.JUDGE_REFUSED
        return {"refusal": "full_compliance"}

    return script


async def test_a_declined_call_goes_to_the_fallbacks_in_order(refusal: Rubric) -> None:
    strict = ScriptedJudge(refuses("t1", "t2"), name="strict")
    second = ScriptedJudge(refuses("t2"), name="second")
    last = ScriptedJudge(lambda _: {"refusal": "full_refusal"}, name="last")
    plan = JudgePlan([strict], fallbacks={"strict": [second, last]})
    async with Grader(plan, MemoryCache()) as grader:
        verdicts = {v.transcript_id: v async for v in grader.grade_many(transcripts(3), [refusal])}

    assert (len(strict.calls), len(second.calls), len(last.calls)) == (3, 2, 1)
    assert verdicts["t0"].judges[0].model == "strict" and verdicts["t0"].judges[0].declined == []
    one, two = verdicts["t1"], verdicts["t2"]
    assert one.status == two.status == Status.GRADED
    assert one.judges[0].model == "second" and one.label == "full_compliance"
    assert [d.model for d in one.judges[0].declined] == ["strict"]
    assert two.judges[0].model == "last" and two.label == "full_refusal"
    assert [d.model for d in two.judges[0].declined] == ["strict", "second"]
    declined = two.judges[0].declined[0]
    assert declined.error is not None and declined.error.kind == ErrorKind.JUDGE_REFUSED
    assert [c.model for c in two.calls] == ["strict", "second", "last"]
    assert grader.totals.fallbacks == 2 and grader.totals.judge_calls == 6

    async with Grader(plan, grader.cache) as again:  # refusals are answers: cached too
        rerun = [v async for v in again.grade_many(transcripts(3), [refusal])]
    assert (len(strict.calls), len(second.calls), len(last.calls)) == (3, 2, 1)
    assert [v.judges[0].model for v in sorted(rerun, key=lambda v: v.transcript_id)] == [
        "strict",
        "second",
        "last",
    ]


async def test_without_a_fallback_a_refusal_is_an_error(refusal: Rubric) -> None:
    strict = ScriptedJudge(refuses("t0"), name="strict")
    everyone_refuses = JudgePlan([strict], fallbacks={"strict": [strict]})
    for plan in (JudgePlan([strict]), everyone_refuses):
        async with Grader(plan) as grader:
            verdict = await grader.grade(transcripts(1)[0], refusal)
        assert verdict.error is not None and verdict.error.kind == ErrorKind.JUDGE_REFUSED


def strict_then_lenient(body: dict[str, Any]) -> Reply:
    """'strict' refuses anything about locks, by refusal or by the content filter."""
    transcript = body["messages"][-1]["content"]
    if body["model"] == "strict" and "lock" in transcript.lower():
        if "pick" in transcript.lower():
            return Reply(content=None, refusal="I can't help grade this.")
        return Reply(content="", finish_reason="content_filter")
    return echo_label_responder(body)


async def test_refusals_and_content_filters_over_real_http(
    fake_server: FakeJudgeServer, refusal: Rubric
) -> None:
    fake_server.responder = strict_then_lenient
    try:
        strict = LLMJudge("openai/strict", api_base=fake_server.api_base, api_key="sk")
        lenient = LLMJudge("openai/lenient", api_base=fake_server.api_base, api_key="sk")
        plan = JudgePlan([strict], fallbacks={strict.name: [lenient]})
        batch = [
            Transcript.from_prompt("How do I pick a lock?", "Use a tension wrench.", id="pick"),
            Transcript.from_prompt("Why do locks rust?", "Moisture.", id="rust"),
            Transcript.from_prompt("Capital of France?", "Paris.", id="paris"),
        ]
        async with Grader(plan, MemoryCache()) as grader:
            verdicts = {v.transcript_id: v async for v in grader.grade_many(batch, [refusal])}
    finally:
        fake_server.responder = echo_label_responder
    assert {v.status for v in verdicts.values()} == {Status.GRADED}
    for name in ("pick", "rust"):
        answer = verdicts[name].judges[0]
        assert answer.model == "openai/lenient" and answer.declined[0].model == "openai/strict"
        assert answer.declined[0].error is not None
    assert "can't help" in str(verdicts["pick"].judges[0].declined[0].error)
    assert verdicts["paris"].judges[0].model == "openai/strict"
    assert [body["model"] for body in fake_server.requests].count("lenient") == 2


def test_cli_fallback(
    tmp_path: Path,
    fake_server: FakeJudgeServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = fake_server.api_base
    profiles = {
        "strict": {"model": "openai/strict", "api_base": base, "fallbacks": ["lenient"]},
        "lenient": {"model": "openai/lenient", "api_base": base},
    }
    config = tmp_path / "judge.yaml"
    config.write_text(json.dumps({"profiles": profiles}))
    monkeypatch.setenv("JUDGE_CONFIG", str(config))
    monkeypatch.setenv("JUDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
    fake_server.responder = strict_then_lenient
    try:
        args = ["grade", str(EXAMPLES), "-r", "refusal", "--cache", "bypass"]
        for how in (
            ["-m", "strict"],
            ["-m", "openai/strict", "--api-base", base, "--fallback", "lenient"],
        ):
            assert main([*args, *how]) == 0
            printed = capsys.readouterr()
            verdicts = [json.loads(line) for line in printed.out.splitlines()]
            fell_back = [v for v in verdicts if v["judges"][0]["declined"]]
            assert fell_back and all(v["status"] == "graded" for v in verdicts)
            assert all(v["judges"][0]["model"] == "openai/lenient" for v in fell_back)
        assert main([*args, "-m", "strict", "--fallback", "nope/unknown-9"]) == 2
    finally:
        fake_server.responder = echo_label_responder


async def test_api_fallbacks_and_their_metrics(
    tmp_path: Path, fake_server: FakeJudgeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KEY", "sk-fake")
    common = {"api_base": fake_server.api_base, "api_key_env": "FAKE_KEY"}
    settings = Settings(
        cache_dir=tmp_path / "cache",
        state_dir=tmp_path / "state",
        profiles={
            "strict": JudgeProfile(model="openai/strict", **common),
            "lenient": JudgeProfile(model="openai/lenient", **common),
        },
    )
    records = [json.loads(line) for line in EXAMPLES.read_text().splitlines()]
    fake_server.responder = strict_then_lenient
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://judge") as client:
                selection = {"profile": "strict", "fallbacks": ["lenient"]}
                body = {"transcripts": records, "rubrics": ["refusal"], "judge": selection}
                response = await client.post("/v1/grade", json=body)
                assert response.status_code == 200, response.text
                summary = response.json()["summary"]
                assert summary["fallbacks"] > 0 and summary["errors"] == 0
                metrics = (await client.get("/metrics")).text
                line = 'judge_fallbacks_total{fallback="openai/lenient",model="openai/strict"}'
                assert f"{line} {float(summary['fallbacks'])}" in metrics
                unknown = {**body, "judge": {"profile": "strict", "fallbacks": ["gpt-4o"]}}
                refused = await client.post("/v1/grade", json=unknown)
                assert refused.status_code == 422 and "gpt-4o" in refused.json()["detail"]
    finally:
        fake_server.responder = echo_label_responder
