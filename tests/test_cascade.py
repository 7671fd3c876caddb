"""Cascades: the first judge's verdict stands where it is confident (the rubric's threshold for
it), the rest go to the next judge; the verdict says which stage decided and why, and keeps what
the earlier stages returned (their cost counts)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from judge.cache import MemoryCache
from judge.cli import main
from judge.config import Settings
from judge.datasets import Split, load_xstest
from judge.errors import ErrorKind, JudgeSpecError
from judge.estimate import estimate
from judge.grading import Grader
from judge.grouping import units
from judge.heuristics.refusal_model import shipped
from judge.judges import JudgeProfile, LLMJudge, OfflineJudge
from judge.judges.base import JudgeRequest
from judge.plan import JudgePlan, Order
from judge.rubric import Rubric, RubricLibrary
from judge.server import create_app
from judge.testing.fake_server import FakeJudgeServer
from judge.testing.scripted_judge import Output, Scored, ScriptedJudge
from judge.transcript import Transcript
from judge.verdict import Status, Summary
from tests.conftest import SHARED_DATA

PROBABILITY = {"t0": 0.99, "t1": 0.95, "t2": 0.6, "t3": 0.2}


def transcripts(count: int = 4) -> list[Transcript]:
    return [
        Transcript.from_prompt(f"question {i}", f"answer {i}", id=f"t{i}") for i in range(count)
    ]


def cheap_script(request: JudgeRequest) -> Output:
    transcript = request.transcript
    assert isinstance(transcript, Transcript)
    if transcript.id == "t3":
        return ErrorKind.PROVIDER
    return Scored({"refusal": "full_refusal"}, PROBABILITY[str(transcript.id)])


def with_threshold(rubric: Rubric, **thresholds: float) -> Rubric:
    return rubric.model_copy(update={"cascade": thresholds})


async def test_the_first_stage_decides_what_it_is_confident_about(refusal: Rubric) -> None:
    cheap = ScriptedJudge(cheap_script, name="cheap")
    good = ScriptedJudge(lambda _: {"refusal": "full_compliance"}, name="good")
    rubric = with_threshold(refusal, cheap=0.9)
    async with Grader(JudgePlan.cascade([cheap, good]), MemoryCache()) as grader:
        verdicts = {v.transcript_id: v async for v in grader.grade_many(transcripts(), [rubric])}

    assert len(cheap.calls) == 4 and len(good.calls) == 2  # t2 (0.6) and t3 (failed)
    for name in ("t0", "t1"):
        verdict = verdicts[name]
        assert verdict.label == "full_refusal" and verdict.cascade is not None
        assert verdict.cascade.stage == 0 and verdict.cascade.judges == ["cheap"]
        assert (
            verdict.confidence == PROBABILITY[name] and verdict.confidence_source == "probability"
        )
        assert (
            verdict.cascade.reason.startswith("cheap: probability")
            and "stands" in verdict.cascade.reason
        )
        assert verdict.cascade.escalated == []
    unsure, failed = verdicts["t2"], verdicts["t3"]
    assert unsure.label == failed.label == "full_compliance"
    assert unsure.cascade is not None and failed.cascade is not None
    assert unsure.cascade.stage == failed.cascade.stage == 1
    assert "0.600 < 0.9, escalated" in unsure.cascade.reason
    assert "error (provider), escalated" in failed.cascade.reason
    assert [r.model for r in unsure.cascade.escalated] == ["cheap"]
    assert [r.model for r in unsure.judges] == ["good"]
    assert grader.totals.escalated == 2 and grader.totals.judge_calls == 6


async def test_a_rubric_without_a_threshold_for_the_judge_always_escalates(
    refusal: Rubric,
) -> None:
    cheap = ScriptedJudge(lambda _: Scored({"refusal": "full_refusal"}, 1.0), name="cheap")
    good = ScriptedJudge(lambda _: {"refusal": "full_compliance"}, name="good")
    rubric = with_threshold(refusal, other=0.5)
    async with Grader(JudgePlan.cascade([cheap, good])) as grader:
        verdicts = [v async for v in grader.grade_many(transcripts(2), [rubric])]
    assert all(v.cascade and v.cascade.stage == 1 for v in verdicts)
    assert "no cascade threshold" in str(verdicts[0].cascade and verdicts[0].cascade.reason)


async def test_escalated_calls_count_in_cost_and_summary(refusal: Rubric) -> None:
    cheap = ScriptedJudge(lambda _: Scored({"refusal": "full_refusal"}, 0.5), name="cheap")
    good = ScriptedJudge(lambda _: {"refusal": "full_compliance"}, name="good")
    async with Grader(JudgePlan.cascade([cheap, good])) as grader:
        verdict = await grader.grade(transcripts(1)[0], with_threshold(refusal, cheap=0.9))
    assert verdict.cascade is not None
    escalated = verdict.cascade.escalated[0].model_copy(update={"cost_usd": 0.25})
    costly = verdict.model_copy(
        update={"cascade": verdict.cascade.model_copy(update={"escalated": [escalated]})}
    )
    assert costly.cost_usd == 0.25 and [j.model for j in costly.calls] == ["cheap", "good"]
    summary = Summary()
    summary.add(costly)
    assert (summary.cost_usd, summary.judge_calls, summary.escalated) == (0.25, 2, 1)


def test_a_cascade_needs_judges() -> None:
    with pytest.raises(JudgeSpecError, match=r"^a cascade needs at least one judge$"):
        JudgePlan.cascade([])


def test_every_stage_of_a_cascade_keeps_the_samples_fallbacks_and_order_asked_for() -> None:
    cheap, good, spare = OfflineJudge(), LLMJudge("openai/good"), LLMJudge("openai/spare")
    fallbacks = {good.name: [spare]}
    plan = JudgePlan.cascade([cheap, good], samples=3, fallbacks=fallbacks, order=Order.FIXED)
    assert [stage.judges for stage in plan.stages] == [[cheap], [good]]
    for stage in plan.stages:
        assert (stage.samples, stage.fallbacks, stage.order) == (3, fallbacks, Order.FIXED)


def test_the_refusal_rubric_ships_the_threshold_its_classifier_was_tuned_for(
    library: RubricLibrary,
) -> None:
    refusal = library.get("refusal")
    assert refusal.cascade == {"offline": shipped().confident_at}
    changed = with_threshold(refusal, offline=0.5)
    assert Rubric.model_validate(changed.model_dump()).content_hash != refusal.content_hash


async def test_offline_then_an_llm_judge_over_real_http(
    fake_server: FakeJudgeServer, library: RubricLibrary
) -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip("needs ../shared/data")
    batch = load_xstest(SHARED_DATA / "xstest", Split.DEV)[:60]
    llm = LLMJudge("openai/fake-judge", api_base=fake_server.api_base, api_key="sk-fake")
    plan = JudgePlan.cascade([OfflineJudge(), llm])
    rubric = library.get("refusal")
    dry = await estimate(units(batch, [rubric]), plan, MemoryCache())
    async with Grader(plan, MemoryCache()) as grader:
        verdicts = [v async for v in grader.grade_many(batch, [rubric])]
    stages = [v.cascade.stage for v in verdicts if v.cascade]
    assert len(stages) == 60 and 0 < stages.count(1) < 60
    assert fake_server.request_count == stages.count(1)  # only the escalated are paid for
    paid = next(m for m in dry.models if m.model == "openai/fake-judge")
    assert dry.escalated == paid.calls_to_make == stages.count(1) and not dry.upper_bound
    twice = JudgePlan.cascade([llm, llm, OfflineJudge()])
    assert (await estimate(units(batch[:3], [rubric]), twice, MemoryCache())).upper_bound
    for verdict in verdicts:
        assert verdict.status == Status.GRADED and verdict.cascade is not None
        decided_by = verdict.judges[0].model
        assert decided_by == ("offline" if verdict.cascade.stage == 0 else "openai/fake-judge")
        assert verdict.cascade.stage == 0 or verdict.cascade.escalated[0].model == "offline"


def test_cli_cascade_and_configured_cascades(
    tmp_path: Path,
    fake_server: FakeJudgeServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "judge.yaml"
    profiles = {"fake": {"model": "openai/fake-judge", "api_base": fake_server.api_base}}
    config.write_text(
        json.dumps({"profiles": profiles, "cascades": {"cheap": ["offline", "fake"]}})
    )
    monkeypatch.setenv("JUDGE_CONFIG", str(config))
    monkeypatch.setenv("JUDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
    examples = Path(__file__).parent.parent / "examples" / "transcripts.jsonl"
    args = ["grade", str(examples), "-r", "refusal", "--cache", "bypass"]
    for how in (["--cascade", "offline,fake"], ["-m", "cheap"]):
        fake_server.reset()
        assert main([*args, *how, "-q"]) == 0
        verdicts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        escalated = [v for v in verdicts if v["cascade"]["stage"] == 1]
        assert len(verdicts) == 12 and 0 < len(escalated) == fake_server.request_count < 12
    assert main([*args, "--cascade", "offline,fake", "-m", "fake"]) == 2
    assert main([*args, "--cascade", "offline"]) == 2
    assert "two or more judges" in capsys.readouterr().err


async def test_api_cascades(
    tmp_path: Path, fake_server: FakeJudgeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KEY", "sk-fake")
    fake = JudgeProfile(
        model="openai/fake-judge", api_base=fake_server.api_base, api_key_env="FAKE_KEY"
    )
    settings = Settings(
        cache_dir=tmp_path / "cache",
        state_dir=tmp_path / "state",
        profiles={"fake": fake},
        cascades={"cheap": ["offline", "fake"]},
    )
    examples = Path(__file__).parent.parent / "examples" / "transcripts.jsonl"
    records = [json.loads(line) for line in examples.read_text().splitlines()]
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://judge") as client:
            judges = (await client.get("/v1/judges")).json()
            assert judges["cascades"] == {"cheap": ["offline", "fake"]}
            for selection in ({"cascade": ["offline", "fake"]}, {"profile": "cheap"}):
                body = {"transcripts": records, "rubrics": ["refusal"], "judge": selection}
                response = await client.post("/v1/grade", json=body)
                assert response.status_code == 200, response.text
                stages = [v["cascade"]["stage"] for v in response.json()["verdicts"]]
                assert set(stages) == {0, 1}
                assert response.json()["summary"]["escalated"] == stages.count(1)
            refused = await client.post(
                "/v1/grade",
                json={
                    "transcripts": records[:1],
                    "rubrics": ["refusal"],
                    "judge": {"cascade": ["offline", "gpt-4o"]},
                },
            )
            assert refused.status_code == 422 and "gpt-4o" in refused.json()["detail"]
            both = {"profile": "cheap", "cascade": ["offline", "fake"]}
            ambiguous = await client.post(
                "/v1/grade",
                json={"transcripts": records[:1], "rubrics": ["refusal"], "judge": both},
            )
            assert ambiguous.status_code == 422
