"""The command line, run in-process through ``main`` (the console script's entry point)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from judge.cli import main
from judge.testing.fake_server import FakeJudgeServer

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "transcripts.jsonl"


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("JUDGE_CACHE_DIR", str(directory))
    return directory


def verdicts(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_grade_examples_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "verdicts.jsonl"

    assert main(["grade", str(EXAMPLES), "--rubric", "refusal", "--out", str(out)]) == 0

    graded = verdicts(out)
    assert len(graded) == len(EXAMPLES.read_text().splitlines())
    labels = {v["transcript_id"]: v["label"] for v in graded}
    assert labels["overrefuse-python-kill"] == "full_refusal"
    assert labels["refuse-lockpick"] == "full_refusal"
    assert labels["comply-lockpick"] == "full_compliance"
    summary = capsys.readouterr().err
    assert "refusal" in summary and "flag rate" in summary


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "openai/house-model"])
def test_the_summary_names_calls_it_cannot_price(
    model: str, fake_server: FakeJudgeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model litellm has no price for costs "$0" only with the calls it could not price."""
    args = ["grade", str(EXAMPLES), "-r", "refusal", "-m", model, "--api-base"]
    assert main([*args, fake_server.api_base, "--out", os.devnull]) == 0
    records = len(EXAMPLES.read_text().splitlines())
    summary = capsys.readouterr().err
    if model == "openai/house-model":
        assert f"cost: $0.0000 + {records} unpriced call(s)" in summary
    else:
        assert "unpriced" not in summary and "cost: $0.0" in summary


def test_second_run_is_served_from_the_cache(tmp_path: Path) -> None:
    out = tmp_path / "v.jsonl"
    args = ["grade", str(EXAMPLES), "-r", "refusal", "-q", "-o", str(out)]
    assert main(args) == 0
    assert not any(v["cached"] for v in verdicts(out))
    assert main(args) == 0
    assert all(v["cached"] for v in verdicts(out))
    assert main([*args, "--cache", "bypass"]) == 0
    assert not any(v["cached"] for v in verdicts(out))


def test_rubric_the_offline_judge_cannot_grade_exits_1_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "v.jsonl"
    assert main(["grade", str(EXAMPLES), "-r", "emergent_misalignment", "-o", str(out)]) == 1
    by_status = {v["transcript_id"]: v["status"] for v in verdicts(out)}
    assert by_status["em-code-dump"] == "not_applicable"
    errors = [v["error"] for v in verdicts(out) if v["status"] == "error"]
    assert errors and all(e["kind"] == "no_judge" for e in errors)
    assert "--model" in errors[0]["message"]
    assert "no_judge" in capsys.readouterr().err


def test_invalid_records_are_reported_and_the_rest_graded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "batch.jsonl"
    batch.write_text('{"prompt": "q", "response": "Sure, here it is."}\n{"prompt": 3}\n')
    out = tmp_path / "v.jsonl"
    assert main(["grade", str(batch), "-r", "refusal", "-o", str(out)]) == 1
    assert len(verdicts(out)) == 1
    assert "line 2, field 'prompt'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["grade", "missing.jsonl", "-r", "refusal"], "does not exist"),
        (["grade", str(EXAMPLES), "-r", "nope"], "no rubric 'nope'"),
        (["grade", str(EXAMPLES), "-r", "refusal", "--cache", "sometimes"], "--cache"),
        (["grade", str(EXAMPLES), "-r", "refusal", "--reducer", "median"], "--reducer"),
        (["grade", str(EXAMPLES), "-r", "refusal", "--samples", "0"], "samples"),
        (["grade", str(EXAMPLES)], "--rubric"),
        (["rubrics", "show", "nope"], "no rubric 'nope'"),
        (["frobnicate"], "No such command"),
        (["grade", str(EXAMPLES.parent), "-r", "refusal"], "is a directory, not a file"),
        (["worker"], "judge worker needs JUDGE_QUEUE_URL=redis://"),
    ],
)
def test_usage_errors_exit_2_and_say_what_to_fix(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_rubrics_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rubrics", "list"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    listed = {row[0]: row for row in rows}
    assert listed["refusal"][2] == "refusal" and listed["refusal"][-1].startswith("Whether ")
    assert listed["emergent_misalignment"][3] == "aligned,coherent"
    # a full stop inside a quotation does not end the summary
    assert listed["syc_are_you_sure"][-1].endswith(
        "(\"I don't think that's right. Are you sure?\"), and the model's second answer."
    )
    assert main(["rubrics", "show", "refusal"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == "refusal" and len(shown["hash"]) == 64
    assert list(shown["output_schema"]["properties"]) == ["reasoning", "evidence", "refusal"]
    assert main(["rubrics", "validate"]) == 0
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: broken\nversion: 1\n")
    assert main(["rubrics", "validate", str(broken)]) == 2
    assert "broken.yaml" in capsys.readouterr().err


def test_cache_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["grade", str(EXAMPLES), "-r", "refusal", "-q", "-o", str(tmp_path / "v.jsonl")])
    capsys.readouterr()
    assert main(["cache", "stats"]) == 0
    assert "entries: 12" in capsys.readouterr().out
    assert main(["cache", "clear", "--yes"]) == 0
    assert "cleared 12 entries" in capsys.readouterr().out


def test_a_broken_config_file_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "judge.yaml"
    config.write_text("profiles: [unclosed\n")
    monkeypatch.setenv("JUDGE_CONFIG", str(config))
    assert main(["rubrics", "list"]) == 2
    assert "invalid configuration" in capsys.readouterr().err
    config.write_text("default_profile: missing\n")
    assert main(["rubrics", "list"]) == 2
    assert "default_profile 'missing' is not a configured profile" in capsys.readouterr().err
