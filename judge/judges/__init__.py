"""Judges: the protocol, the LLM judge (litellm), the built-in offline judge, and profiles."""

from __future__ import annotations

from judge.judges.base import Judge, JudgeRequest, call_groups
from judge.judges.llm import LLMJudge
from judge.judges.offline import OFFLINE_MODEL, OfflineJudge
from judge.judges.profile import JudgeProfile, judge_for, profile_problem

__all__ = [
    "OFFLINE_MODEL",
    "Judge",
    "JudgeProfile",
    "JudgeRequest",
    "LLMJudge",
    "OfflineJudge",
    "call_groups",
    "judge_for",
    "profile_problem",
]
