"""Judge profiles: every way of naming a judge resolves through one precedence rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from judge.cli import main
from judge.config import Settings
from judge.judges import JudgeProfile, LLMJudge, OfflineJudge, judge_for

CONFIG = """
max_retries: 7
timeout: 11
profiles:
  pinned:
    model: openai/pinned
    api_base: http://127.0.0.1:9999/v1
    max_retries: 5
  loose:
    model: openai/loose
    api_key_env: LOOSE_KEY
"""


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "judge.yaml"
    path.write_text(CONFIG)
    monkeypatch.setenv("JUDGE_CONFIG", str(path))
    return path


def _llm(settings: Settings, name: str) -> LLMJudge:
    judge = judge_for(settings.judge_profile(name))
    assert isinstance(judge, LLMJudge)
    return judge


def test_a_profile_field_wins_over_every_setting(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_MAX_RETRIES", "0")
    assert _llm(Settings(), "pinned").max_retries == 5


def test_an_unset_profile_field_takes_the_variable_over_the_file(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _llm(Settings(), "loose").max_retries == 7  # the file's top level
    assert _llm(Settings(), "loose").timeout == 11
    monkeypatch.setenv("JUDGE_MAX_RETRIES", "0")
    assert _llm(Settings(), "loose").max_retries == 0  # the variable over the file


def test_the_default_applies_when_nothing_is_set() -> None:
    judge = _llm(Settings(profiles={"p": JudgeProfile(model="openai/x")}), "p")
    assert (judge.max_retries, judge.timeout, judge.force_litellm) == (3, 60.0, False)


def test_api_base_applies_to_model_strings_not_to_profiles(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_API_BASE", "http://127.0.0.1:8000/v1")
    settings = Settings()
    assert _llm(settings, "openai/served-locally").api_base == "http://127.0.0.1:8000/v1"
    assert _llm(settings, "loose").api_base is None
    assert _llm(settings, "pinned").api_base == "http://127.0.0.1:9999/v1"


def test_a_profile_reads_its_key_from_the_variable_it_names(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOSE_KEY", "sk-loose")
    assert _llm(Settings(), "loose").api_key == "sk-loose"


def test_offline_is_the_built_in_judge() -> None:
    assert isinstance(judge_for(Settings().judge_profile("offline")), OfflineJudge)


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (["-m", "gpt-nonexistent-9"], {}, "cannot tell which provider serves the model"),
        (["-m", "gpt-4o-mini"], {}, "set OPENAI_API_KEY"),
        (["-m", "loose"], {}, "reads its key from LOOSE_KEY, which is unset"),
        (["-m", "anthropic/claude-3-5-haiku-latest"], {}, "set ANTHROPIC_API_KEY"),
    ],
)
def test_a_judge_that_cannot_call_is_a_usage_error_before_grading(
    config_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    env: dict[str, str],
    said: str,
) -> None:
    source = tmp_path / "t.jsonl"
    source.write_text('{"prompt": "q", "response": "a"}\n')
    out = tmp_path / "v.jsonl"
    monkeypatch.setenv("JUDGE_CACHE_DIR", str(tmp_path / "cache"))

    assert main(["grade", str(source), "-r", "refusal", "-o", str(out), *args]) == 2

    assert said in capsys.readouterr().err
    assert not out.exists() or out.read_text() == ""


def test_local_servers_and_given_keys_pass_the_check(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_API_BASE", "http://127.0.0.1:8000/v1")
    Settings().check_judges(["offline", "pinned", "openai/served"])  # an endpoint: no key needed
    monkeypatch.setenv("LOOSE_KEY", "sk-loose")
    Settings().check_judges(["loose"])


def test_the_server_refuses_to_start_on_a_judge_that_cannot_call(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--port", "1"]) == 2  # 'loose' has no key; nothing is bound
    assert "judge 'loose'" in capsys.readouterr().err
