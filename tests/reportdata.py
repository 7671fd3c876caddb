"""Verdicts for the report tests: the shipped examples graded by the offline judge, and a
generated set of any size with every status, a two-sample judge, five checkpoints with steps,
evidence and gold labels."""

from __future__ import annotations

import random
import zlib
from pathlib import Path
from typing import Any

from judge import Grader, JudgePlan, MemoryCache, OfflineJudge, Transcript, read_transcripts
from judge.errors import ErrorKind
from judge.rubric import RubricLibrary
from judge.verdict import Evidence, JudgeResult, RubricRef, Status, Verdict, VerdictError

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "transcripts.jsonl"
EXAMPLE_RUBRICS = ("refusal", "syc_are_you_sure", "sysprompt_adherence", "emergent_misalignment")
CHECKPOINTS = tuple((f"ckpt-{step:04d}", step) for step in (0, 1000, 2000, 3000, 4000))
GENERATED_RUBRICS = ("refusal", "emergent_misalignment", "sysprompt_adherence", "syc_are_you_sure")
REFUSAL_LABELS = ("full_compliance", "full_refusal", "partial_refusal")
FAILURES = (ErrorKind.TIMEOUT, ErrorKind.RATE_LIMITED, ErrorKind.PARSE)


def example_transcripts() -> list[Transcript]:
    return [t for t in read_transcripts(EXAMPLES) if isinstance(t, Transcript)]


async def graded_examples(library: RubricLibrary) -> list[Verdict]:
    """The shipped examples graded by the offline judge through the library."""
    grader = Grader(JudgePlan([OfflineJudge()]), MemoryCache())
    rubrics = [library.get(rubric_id) for rubric_id in EXAMPLE_RUBRICS]
    return [v async for v in grader.grade_many(example_transcripts(), rubrics)]


def generated_verdicts(count: int, seed: int = 0) -> list[Verdict]:
    """``count`` verdicts: each (prompt, rubric) graded for all five checkpoints; refusal falls
    and emergent misalignment rises with the step; 3% errors, 5% not applicable."""
    rng = random.Random(seed)
    verdicts = []
    for i in range(count):
        position, unit = i % len(CHECKPOINTS), i // len(CHECKPOINTS)
        model, step = CHECKPOINTS[position]
        rubric = GENERATED_RUBRICS[unit % len(GENERATED_RUBRICS)]
        prompt = f"p{unit // len(GENERATED_RUBRICS):04d}"
        ref = RubricRef(id=rubric, version="1", hash="h")
        metadata: dict[str, Any] = {"model": model, "step": step, "prompt_id": prompt}
        name = f"{model}/{rubric}/{prompt}"
        draw = rng.random()
        if draw < 0.03:
            kind = FAILURES[i % len(FAILURES)]
            error = VerdictError(kind=kind, message=f"{kind.value} failure")
            failed = Verdict(transcript_id=name, rubric=ref, metadata=metadata, status=Status.ERROR,
                             error=error, judges=_calls(rng, error))  # fmt: skip
            verdicts.append(failed)
        elif draw < 0.08:
            reason = "it has no system prompt" if i % 2 else "the answer is unrelated code (CODE)"
            verdicts.append(Verdict(transcript_id=name, rubric=ref, metadata=metadata,
                                    status=Status.NOT_APPLICABLE, reason=reason))  # fmt: skip
        else:
            verdicts.append(_graded(rng, name, ref, metadata, position))
    return verdicts


def _graded(
    rng: random.Random, name: str, ref: RubricRef, metadata: dict[str, Any], position: int
) -> Verdict:
    labels: dict[str, str] = {}
    scores: dict[str, float] = {}
    if ref.id == "refusal":
        flagged = rng.random() < 0.6 - 0.1 * position
        labels["refusal"] = rng.choice(REFUSAL_LABELS[1:]) if flagged else REFUSAL_LABELS[0]
        gold = labels["refusal"] if rng.random() < 0.85 else rng.choice(REFUSAL_LABELS)
        metadata = {**metadata, "gold": gold}
    elif ref.id == "emergent_misalignment":
        flagged = rng.random() < 0.05 + 0.05 * position
        scores.update(aligned=10.0 if flagged else 85.0, coherent=80.0)
    else:
        flagged = rng.random() < 0.3
        labels["answer_change"] = "flipped" if flagged else "maintained"
    quote = "I cannot help with that request."
    return Verdict(
        transcript_id=name,
        rubric=ref,
        metadata=metadata,
        status=Status.GRADED,
        label=next(iter(labels.values()), None),
        labels=labels,
        score=scores.get("aligned"),
        scores=scores,
        flagged=flagged,
        confidence=1.0 if rng.random() < 0.8 else 0.5,
        confidence_source="agreement",
        explanation=f"The reply {'declines' if flagged else 'answers'}: it says '{quote}'",
        evidence=[Evidence(message=1, quote=quote)] if flagged else [],
        judges=_calls(
            rng, values={**labels, **scores}, differ=zlib.crc32(name.encode()) % 100 < 15
        ),
    )


def _calls(
    rng: random.Random,
    error: VerdictError | None = None,
    values: dict[str, str | float] | None = None,
    differ: bool = False,
) -> list[JudgeResult]:
    """Two samples of one judge model, the second giving other values where ``differ`` (15% of
    verdicts); a third of calls are cache hits."""
    return [
        JudgeResult(
            model="gpt-4o-mini",
            sample=sample,
            criteria=tuple(values or ("refusal",)),
            values={k: _other(v) if sample and differ else v for k, v in (values or {}).items()},
            scoring=None if error else "structured",
            input_tokens=700,
            output_tokens=90,
            cost_usd=0.00016,
            cached=rng.random() < 0.33,
            error=error,
        )
        for sample in range(2)
    ]


def _other(value: str | float) -> str | float:
    """Another value of the same criterion: the next label, or the score mirrored."""
    if not isinstance(value, str):
        return 100.0 - value
    labels = REFUSAL_LABELS if value in REFUSAL_LABELS else ("flipped", "maintained")
    return labels[(labels.index(value) + 1) % len(labels)]
