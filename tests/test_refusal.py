"""The refusal classifier's API, layers and behaviour on soft refusals.

``tests/data/refusal_shapes.jsonl`` holds replies in the shapes a phrase list misses (redirects,
clarifying questions, safer questions, crisis lines, moralizing) and their compliant twins (answers
with a caveat, a referral or a limitation). They are our own writing (MIT, like the project),
separate from the training transcripts in ``scripts/data`` and never trained on: they measure how
the classifier generalizes beyond XSTest.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from judge.grading import Grader
from judge.heuristics import (
    HEURISTICS_VERSION,
    classify_refusal,
    judge_refusal,
    phrase_label,
    refusal_model,
    refusal_probabilities,
)
from judge.heuristics.refusal_model import MODEL_FILE, Weights, shipped
from judge.heuristics.refusal_rules import LABELS
from judge.judges.offline import OfflineJudge
from judge.plan import JudgePlan
from judge.rubric import RubricLibrary
from judge.transcript import Transcript

SHAPES = Path(__file__).parent / "data" / "refusal_shapes.jsonl"
HEURISTICS = Path(refusal_model.__file__).parent


def shapes() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SHAPES.read_text(encoding="utf-8").splitlines()]


def test_the_written_shapes_are_mostly_told_apart() -> None:
    labels = [(classify_refusal(c["prompt"], c["reply"]), c) for c in shapes()]
    exact = [c["shape"] for label, c in labels if label == c["expected"]]
    binary = [
        c["shape"]
        for label, c in labels
        if (label == "full_compliance") == (c["expected"] == "full_compliance")
    ]
    print(
        f"\nwritten refusal shapes (never trained on): {len(exact)}/{len(labels)} exact labels, "
        f"{len(binary)}/{len(labels)} flagged correctly"
    )
    assert len(exact) >= 14 and len(binary) >= 15


@pytest.mark.parametrize("shape", ["redirect", "clarify", "crisis", "moralize"])
def test_soft_refusals_without_refusal_phrases_are_refusals(shape: str) -> None:
    cases = [c for c in shapes() if c["shape"] == shape]
    assert cases and all(phrase_label(c["reply"]) == "full_compliance" for c in cases)
    assert all(classify_refusal(c["prompt"], c["reply"]) == "full_refusal" for c in cases)


def test_the_same_prompt_answered_is_compliance() -> None:
    """The reply decides, not the prompt: a redirect and an answer to one question differ."""
    prompt = next(c["prompt"] for c in shapes() if c["shape"] == "redirect")
    replies = {c["expected"]: c["reply"] for c in shapes() if c["prompt"] == prompt}
    assert classify_refusal(prompt, replies["full_refusal"]) == "full_refusal"
    assert classify_refusal(prompt, replies["full_compliance"]) == "full_compliance"


def test_probabilities_are_a_distribution_over_the_labels() -> None:
    for case in shapes():
        p = refusal_probabilities(case["prompt"], case["reply"])
        assert set(p) == set(LABELS)
        assert all(0.0 <= v <= 1.0 for v in p.values())
        assert math.isclose(sum(p.values()), 1.0, abs_tol=1e-9)


def test_probabilities_are_deterministic_across_loads() -> None:
    case = shapes()[0]
    first = refusal_probabilities(case["prompt"], case["reply"])
    assert refusal_probabilities(case["prompt"], case["reply"]) == first
    fresh = refusal_model.probabilities(case["prompt"], case["reply"], Weights.load(MODEL_FILE))
    assert fresh == [first[label] for label in LABELS]


def test_the_label_follows_the_probabilities() -> None:
    threshold = shipped().partial_threshold
    for case in shapes():
        judged = judge_refusal(case["prompt"], case["reply"])
        p = judged.probabilities
        if p["partial_refusal"] >= threshold:
            assert judged.label == "partial_refusal"
        else:
            assert judged.label == max(p, key=p.__getitem__)
        assert judged.confident == (judged.confidence >= shipped().confident_at)


def test_an_empty_reply_is_a_certain_refusal() -> None:
    judged = judge_refusal("What is the capital of France?", "   ")
    assert judged.label == "full_refusal" and judged.confidence == 1.0 and judged.confident


async def test_the_offline_judge_says_what_decided_and_how_sure(library: RubricLibrary) -> None:
    case = next(c for c in shapes() if c["shape"] == "redirect")
    transcript = Transcript.from_prompt(case["prompt"], case["reply"])
    verdict = await Grader(JudgePlan([OfflineJudge()])).grade(transcript, library.get("refusal"))
    judged = judge_refusal(case["prompt"], case["reply"])

    assert verdict.label == judged.label == "full_refusal"
    assert verdict.explanation == f"refusal classifier: full_refusal (p={judged.confidence:.2f})"
    details = verdict.details
    total = sum(float(details[f"p_{label}"]) for label in LABELS)
    assert math.isclose(total, 1.0, abs_tol=0.002)
    assert details["confident"] == str(judged.confident).lower()


def test_a_weights_file_for_other_features_is_refused(tmp_path: Path) -> None:
    with np.load(MODEL_FILE, allow_pickle=False) as stored:
        arrays = dict(stored)
    arrays["dense_names"] = arrays["dense_names"][:-1]
    stale = tmp_path / "stale.npz"
    np.savez(stale, **arrays)
    with pytest.raises(ValueError, match="retrain"):
        Weights.load(stale)


def test_the_weights_file_holds_no_pickle() -> None:
    with np.load(MODEL_FILE, allow_pickle=False) as stored:
        assert all(stored[name].dtype != object for name in stored.files)


def imports(module: str) -> set[str]:
    tree = ast.parse((HEURISTICS / f"{module}.py").read_text(encoding="utf-8"))
    return {
        node.module.rsplit(".", 1)[-1]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }


def test_the_refusal_modules_are_layered() -> None:
    """rules <- features <- model <- classify: no module imports one above it."""
    layers = ["refusal_rules", "refusal_features", "refusal_model", "refusal"]
    for below, module in enumerate(layers):
        assert not set(layers[below:]) & imports(module), module
    assert {"refusal_model", "refusal_rules"} <= imports("refusal")


def test_the_heuristics_version_covers_the_refusal_files() -> None:
    from judge.heuristics import hashed_files

    names = {path.name for path in hashed_files()}
    refusal = {"refusal.py", "refusal_rules.py", "refusal_features.py", "refusal_model.py"}
    assert {*refusal, "refusal_model.npz"} <= names
    assert len(HEURISTICS_VERSION) == 16
