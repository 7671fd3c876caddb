"""Judges: the protocol, the LLM judge (litellm), and the built-in offline judge."""

from __future__ import annotations

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
]


def judge_for_model(
    model: str, *, api_base: str | None = None, timeout: float = 60.0, max_retries: int = 3
) -> Judge:
    """The judge a model string names: ``offline`` is the built-in one, anything else litellm's."""
    if model == OFFLINE_MODEL:
        return OfflineJudge()
    return LLMJudge(model, api_base=api_base, timeout=timeout, max_retries=max_retries)
