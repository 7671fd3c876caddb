"""Judges: the protocol, the LLM judge (litellm), and the built-in offline judge."""

from __future__ import annotations

from judge.config import JudgeProfile
from judge.judges.base import Judge, JudgeRequest, call_groups
from judge.judges.llm import LLMJudge
from judge.judges.offline import OFFLINE_MODEL, OfflineJudge

__all__ = [
    "OFFLINE_MODEL",
    "Judge",
    "JudgeRequest",
    "LLMJudge",
    "OfflineJudge",
    "call_groups",
    "judge_for_model",
    "judge_for_profile",
]


def judge_for_profile(profile: JudgeProfile) -> Judge:
    """The judge a configured server profile describes (its key read from ``api_key_env``)."""
    if profile.model == OFFLINE_MODEL:
        return OfflineJudge()
    return LLMJudge(
        profile.model,
        api_base=profile.api_base,
        api_key=profile.api_key(),
        temperature=profile.temperature,
        max_tokens=profile.max_tokens,
        timeout=profile.timeout,
        max_retries=profile.max_retries,
        rpm=profile.rpm,
        force_litellm=profile.force_litellm,
    )


def judge_for_model(
    model: str,
    *,
    api_base: str | None = None,
    timeout: float = 60.0,
    max_retries: int = 3,
    force_litellm: bool = False,
) -> Judge:
    """The judge a model string names: ``offline`` is the built-in one, anything else litellm's."""
    if model == OFFLINE_MODEL:
        return OfflineJudge()
    return LLMJudge(
        model,
        api_base=api_base,
        timeout=timeout,
        max_retries=max_retries,
        force_litellm=force_litellm,
    )
