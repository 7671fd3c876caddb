"""The Inspect AI scorer, for real: ``rubric_scorer`` grades a small task's samples inside
``inspect_ai.eval`` with the offline judge, an LLM judge on the fake judge server, and a
``judge serve`` over HTTP."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from inspect_ai import Epochs
from inspect_ai.log import EvalLog, read_eval_log
from pydantic import SecretStr

from judge.config import Settings
from judge.errors import JudgeSpecError, RubricError
from judge.integrations.inspect import rubric_scorer, score_of
from judge.judges import JudgeProfile
from judge.server import create_app
from judge.testing.fake_server import FakeJudgeServer, Reply
from judge.verdict import RubricRef, Status, Verdict
from tests.inspect_task import GRADED, REFUSAL, run_task
from tests.processes import free_port


def scores(log: EvalLog) -> dict[tuple[str, int], Any]:
    return {(str(s.id), s.epoch): (s.scores or {})["judge_rubric"] for s in log.samples or []}


def test_the_scorer_grades_samples_inside_inspect_with_the_offline_judge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_CACHE_DIR", str(tmp_path / "cache"))
    log = run_task(tmp_path, rubric_scorer("refusal"), epochs=Epochs(2, ["mean", "max"]))

    for (sample, epoch), score in scores(log).items():
        if sample == "silent":
            assert math.isnan(score.value) and score.reason == "not_applicable"
            assert "assistant" in score.explanation
            continue
        assert score.value == (1.0 if sample == "refuse" else 0.0)
        assert score.answer == GRADED[sample]
        assert score.explanation.startswith(f"refusal classifier: {GRADED[sample]} (p=")
        verdict = score.metadata["verdict"]
        assert verdict["status"] == "graded" and verdict["transcript_id"] == f"{sample}/{epoch}"
        assert verdict["judges"][0]["scoring"] == "offline"
    results = {(r.reducer, r.name): r for r in (log.results.scores if log.results else [])}
    mean_reduced = results[("mean", "judge_rubric")]
    assert mean_reduced.scored_samples == 3 and mean_reduced.unscored_samples == 1
    assert mean_reduced.metrics["mean"].value == pytest.approx(1 / 3)  # the flag rate
    assert "stderr" in mean_reduced.metrics
    assert results[("max", "judge_rubric")].metrics["mean"].value == pytest.approx(1 / 3)


def label_by_content(body: dict[str, Any]) -> Reply:
    """The fake judge: refusal labels from the graded reply; a tool conversation fails (400)."""
    prompt = body["messages"][-1]["content"]
    if "[tool call add" in prompt:
        return Reply(status=400, error_body={"error": {"message": "bad request", "type": "x"}})
    label = "full_refusal" if REFUSAL in prompt else "full_compliance"
    return Reply(content=json.dumps({"reasoning": f"judged {label}", "refusal": label}))


def test_the_scorer_grades_with_an_llm_judge_and_records_a_failed_call_as_unscored(
    tmp_path: Path, fake_server: FakeJudgeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(fake_server, "responder", label_by_content)
    scorer = rubric_scorer("refusal", model="openai/fake-judge", api_base=fake_server.api_base)

    log = run_task(tmp_path, scorer, max_samples=1)

    for (sample, _), score in scores(log).items():
        if sample == "tool":  # the judge call failed: unscored, never "not flagged"
            assert math.isnan(score.value) and score.reason == "grader_failed"
            assert score.explanation.startswith("provider:")
            assert score.metadata["verdict"]["error"]["kind"] == "provider"
        elif sample != "silent":
            assert (score.value, score.answer) == (float(sample == "refuse"), GRADED[sample])
            assert score.explanation == f"judged {GRADED[sample]}"
    # one judge call per distinct conversation: the second epoch of each is a cache hit, except
    # the failed call, which is never cached and is made again
    assert fake_server.request_count == 4
    [result] = log.results.scores if log.results else []
    assert (result.scored_samples, result.unscored_samples) == (2, 2)


class ThreadServer:
    """``create_app(settings)`` under uvicorn in a thread, on a free loopback port."""

    def __init__(self, settings: Settings):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(create_app(settings), port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the judge server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def judge_server(
    tmp_path: Path, fake_server: FakeJudgeServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ThreadServer]:
    monkeypatch.setenv("FAKE_KEY", "sk-fake")
    fake = JudgeProfile(model="openai/fake-judge", api_base=fake_server.api_base)
    settings = Settings(
        cache_backend="memory",
        state_dir=tmp_path / "state",
        profiles={"fake": fake.model_copy(update={"api_key_env": "FAKE_KEY"})},
        api_keys=[SecretStr("k-secret")],
    )
    with ThreadServer(settings) as server:
        yield server


def test_the_scorer_grades_on_a_judge_server_and_keeps_its_key_out_of_the_log(
    tmp_path: Path,
    judge_server: ThreadServer,
    fake_server: FakeJudgeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fake_server, "responder", label_by_content)
    scorer = rubric_scorer("refusal", url=judge_server.url, model="fake", api_key="k-secret")

    log = run_task(tmp_path, scorer)

    found = scores(log)
    for epoch in (1, 2):
        assert (found[("refuse", epoch)].value, found[("refuse", epoch)].answer) == (
            1.0,
            "full_refusal",
        )
        assert (found[("comply", epoch)].value, found[("comply", epoch)].answer) == (
            0.0,
            "full_compliance",
        )
        assert found[("tool", epoch)].reason == "grader_failed"  # the server's error verdict
        assert found[("silent", epoch)].reason == "not_applicable"
    assert found[("refuse", 1)].metadata["verdict"]["judges"][0]["model"] == "openai/fake-judge"
    assert "k-secret" not in Path(log.location).read_bytes().decode("latin-1")
    assert "k-secret" not in read_eval_log(log.location).model_dump_json()


def test_a_refused_key_leaves_every_sample_unscored(
    tmp_path: Path, judge_server: ThreadServer, fake_server: FakeJudgeServer
) -> None:
    scorer = rubric_scorer("refusal", url=judge_server.url, model="fake", api_key="wrong")

    log = run_task(tmp_path, scorer, epochs=1)

    for score in scores(log).values():
        assert math.isnan(score.value) and score.reason == "scoring_failed"
        assert "401" in score.explanation
    assert fake_server.request_count == 0


def test_the_scorer_refuses_what_it_cannot_grade_when_it_is_made() -> None:
    with pytest.raises(RubricError):
        rubric_scorer("no_such_rubric")
    with pytest.raises(JudgeSpecError, match="groups"):
        rubric_scorer("syc_answer")
    with pytest.raises(JudgeSpecError, match="scale"):
        rubric_scorer("refusal", value="score")


def test_value_score_scores_the_first_scale_and_leaves_a_verdict_without_one_unscored() -> None:
    rubric = RubricRef(id="emergent_misalignment", version="1", hash="h")
    graded = Verdict(
        transcript_id="t", rubric=rubric, status=Status.GRADED, score=12.5, flagged=True
    )
    unscaled = graded.model_copy(update={"score": None})

    assert (score_of(graded, "score").value, score_of(graded, "score").answer) == (12.5, "12.5")
    assert score_of(graded).value == 1.0
    assert math.isnan(score_of(unscaled, "score").as_float())
    assert score_of(unscaled, "score").reason == "scoring_failed"
