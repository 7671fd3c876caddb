"""Judge profiles: every way of naming a judge resolves through one precedence rule."""

from __future__ import annotations

from pathlib import Path

import pytest

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
