"""Deterministic heuristics: what can be judged without an LLM, one module per check."""

from __future__ import annotations

import hashlib
from pathlib import Path

from judge.heuristics.answers import classify_answer_change, classify_flip, extract_answer
from judge.heuristics.code import is_unrelated_code
from judge.heuristics.constraints import check_constraints, find_constraints
from judge.heuristics.identity import classify_identity
from judge.heuristics.refusal import (
    RefusalJudgement,
    classify_refusal,
    judge_refusal,
    refusal_probabilities,
)
from judge.heuristics.refusal_rules import RefusalLabel, phrase_label


def hashed_files() -> list[Path]:
    """The files whose content is the heuristics' version: every module and every weights file."""
    here = Path(__file__).parent
    return sorted(here.glob("*.py")) + sorted(here.glob("*.npz"))


def _source_hash() -> str:
    digest = hashlib.sha256()
    for path in hashed_files():
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


HEURISTICS_VERSION = _source_hash()
"""Part of the offline judge's identity: any edit to a heuristic invalidates its cached results."""

__all__ = [
    "HEURISTICS_VERSION",
    "RefusalJudgement",
    "RefusalLabel",
    "check_constraints",
    "classify_answer_change",
    "classify_flip",
    "classify_identity",
    "classify_refusal",
    "extract_answer",
    "find_constraints",
    "hashed_files",
    "is_unrelated_code",
    "judge_refusal",
    "phrase_label",
    "refusal_probabilities",
]
