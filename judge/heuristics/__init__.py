"""Deterministic heuristics: what can be judged without an LLM, one module per check."""

from __future__ import annotations

import hashlib
from pathlib import Path

from judge.heuristics.answers import classify_answer_change, classify_flip, extract_answer
from judge.heuristics.code import is_unrelated_code
from judge.heuristics.constraints import check_constraints, find_constraints
from judge.heuristics.identity import classify_identity
from judge.heuristics.refusal import RefusalLabel, classify_refusal, phrase_label


def _source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")) + sorted(
        Path(__file__).parent.glob("*.npz")
    ):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


HEURISTICS_VERSION = _source_hash()
"""Part of the offline judge's identity: any edit to a heuristic invalidates its cached results."""

__all__ = [
    "HEURISTICS_VERSION",
    "RefusalLabel",
    "check_constraints",
    "classify_answer_change",
    "classify_flip",
    "classify_identity",
    "classify_refusal",
    "extract_answer",
    "find_constraints",
    "is_unrelated_code",
    "phrase_label",
]
