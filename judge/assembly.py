"""Verdict assembly: one (transcript or group, rubric)'s judge results reduced into its verdict.

Reducers combine an ensemble's or samples' values per criterion (majority label, mean score) and
their flags (``any``/``all``/the rule on the reduced values); confidence is their agreement, or
the logprob mass of a single scored call; evidence quotes are kept only where they occur in the
cited message.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from statistics import fmean
from typing import Any, Literal

from judge.rubric import Criterion, Rubric
from judge.transcript import Subject, TranscriptGroup
from judge.verdict import Evidence, JudgeResult, RubricRef, Status, Verdict


class Reducer(StrEnum):
    """How an ensemble combines: ``majority`` takes the majority label and the mean score, and
    flags by the rubric's rule on those; ``any``/``all`` flag when any/all of the individual
    results flag."""

    MAJORITY = "majority"
    ANY = "any"
    ALL = "all"


@dataclass(frozen=True)
class Reduced:
    """One criterion's value over several results, and the share of results that agree."""

    value: str | float
    agreement: float


def reduce_values(criterion: Criterion, values: Sequence[str | float]) -> Reduced:
    """Majority label (ties go to the rubric's label order) or mean score."""
    if criterion.labels is not None:
        counts = Counter(str(v) for v in values)
        top = max(counts.values())
        winner = next(name for name in criterion.label_names if counts.get(name) == top)
        return Reduced(winner, top / len(values))
    numbers = [float(v) for v in values]
    mean = fmean(numbers)
    assert criterion.scale is not None
    spread = (max(numbers) - min(numbers)) / (criterion.scale.max - criterion.scale.min)
    return Reduced(mean, 1.0 - spread)


def reduce_flags(reducer: Reducer, flags: Sequence[bool], reduced_flag: bool) -> bool:
    """``any``/``all`` combine per-result flags; otherwise the flag of the reduced values stands."""
    if reducer == Reducer.ANY:
        return any(flags)
    if reducer == Reducer.ALL:
        return all(flags)
    return reduced_flag


def verdict_for(rubric: Rubric, subject: Subject, **fields: Any) -> Verdict:
    members = subject.member_ids if isinstance(subject, TranscriptGroup) else []
    return Verdict(
        transcript_id=subject.key,
        rubric=RubricRef(id=rubric.id, version=rubric.version, hash=rubric.content_hash),
        metadata=subject.metadata,
        members=members,
        **fields,
    )


def build_verdict(
    rubric: Rubric, subject: Subject, results: list[JudgeResult], reducer: Reducer
) -> Verdict:
    """Reduce the calls for one (transcript or group, rubric) into its verdict.

    Any failed call makes the verdict an error (an ensemble with a missing member is not the
    ensemble that was asked for; the calls that succeeded are cached, so a retry pays only for
    the failures). A criterion that no call could score makes it not applicable, with the reasons.
    """
    key = hashlib.sha256(("|".join(sorted(r.key for r in results)) + reducer).encode()).hexdigest()
    results = [_canonical_evidence(result) for result in results]
    common: dict[str, Any] = {
        "judges": results,
        "key": key,
        "cached": all(r.cached for r in results),
        "orders": _orders(subject, results),
    }
    failed = [r for r in results if r.error is not None]
    if failed:
        error = failed[0].error
        return verdict_for(rubric, subject, status=Status.ERROR, error=error, **common)
    disagreement = _order_disagreement(rubric, results)
    if disagreement is not None:
        return verdict_for(
            rubric, subject, status=Status.INCONSISTENT, reason=disagreement, **common
        )

    values: dict[str, list[str | float]] = {c.name: [] for c in rubric.criteria}
    unscored: list[str] = []
    for result in results:
        for name, value in result.values.items():
            values[name].append(value)
        if result.unscored:
            unscored.append(result.unscored)
    if any(not found for found in values.values()):
        reason = "; ".join(dict.fromkeys(unscored))
        return verdict_for(rubric, subject, status=Status.NOT_APPLICABLE, reason=reason, **common)

    reduced = {c.name: reduce_values(c, values[c.name]) for c in rubric.criteria}
    final = {name: r.value for name, r in reduced.items()}
    flags = [rubric.is_flagged(member) for member in _complete_members(rubric, results)]
    flagged = reduce_flags(reducer, flags or [rubric.is_flagged(final)], rubric.is_flagged(final))
    labels = {n: str(v) for n, v in final.items() if rubric.criterion(n).labels is not None}
    scores = {n: float(v) for n, v in final.items() if rubric.criterion(n).scale is not None}
    confidence, source = _confidence(results, reduced)
    claimed = list(dict.fromkeys(item for r in results for item in r.evidence))
    verified = [item for item in claimed if quote_occurs(subject, item)]
    return verdict_for(
        rubric,
        subject,
        status=Status.GRADED,
        label=next(iter(labels.values()), None),
        labels=labels,
        score=next(iter(scores.values()), None),
        scores=scores,
        derived=rubric.derive(final),
        flagged=flagged,
        confidence=confidence,
        confidence_source=source,
        explanation=next((r.reasoning for r in results if r.reasoning), None),
        details=next((r.details for r in results if r.details), {}),
        evidence=verified,
        evidence_dropped=len(claimed) - len(verified),
        **common,
    )


def _canonical_evidence(result: JudgeResult) -> JudgeResult:
    """A result whose judge saw the group reordered, its evidence citing members by their
    canonical index."""
    if not result.order or not result.evidence:
        return result
    order = result.order
    moved = [
        e.model_copy(update={"transcript": order[e.transcript]})
        if e.transcript is not None and 0 <= e.transcript < len(order)
        else e
        for e in result.evidence
    ]
    return result.model_copy(update={"evidence": moved})


def _orders(subject: Subject, results: list[JudgeResult]) -> list[list[int]]:
    """For a group, the orders its members were shown in (canonical indices)."""
    if not isinstance(subject, TranscriptGroup):
        return []
    canonical = list(range(len(subject.members)))
    return [list(o) for o in dict.fromkeys(tuple(r.order or canonical) for r in results)]


def _order_disagreement(rubric: Rubric, results: list[JudgeResult]) -> str | None:
    """Why a judge's results for the same sample disagree between the orders it was shown a
    group in (a label, or the flag, differs), or None."""
    by_order: dict[tuple[str, int], dict[tuple[int, ...], dict[str, str | float]]] = {}
    for result in results:
        member = by_order.setdefault((result.model, result.sample), {})
        member.setdefault(tuple(result.order), {}).update(result.values)
    labels = [c.name for c in rubric.criteria if c.labels is not None]
    for (model, _), seen in by_order.items():
        complete = {o: v for o, v in seen.items() if len(v) == len(rubric.criteria)}
        if len(complete) < 2:
            continue
        said = {
            order: (tuple(str(values[n]) for n in labels), rubric.is_flagged(values))
            for order, values in complete.items()
        }
        if len(set(said.values())) > 1:
            answers = "; ".join(
                f"shown {list(order) or 'in canonical order'}: "
                f"{', '.join(labels_) or '-'}, {'flagged' if flag else 'not flagged'}"
                for order, (labels_, flag) in said.items()
            )
            return f"{model} disagrees with itself when the order changes ({answers})"
    return None


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def quote_occurs(subject: Subject, evidence: Evidence) -> bool:
    """Whether the quoted words stand in the cited message (white space aside)."""
    if isinstance(subject, TranscriptGroup):
        if evidence.transcript is None or not 0 <= evidence.transcript < len(subject.members):
            return False
        transcript = subject.members[evidence.transcript]
    else:
        transcript = subject
    if not 0 <= evidence.message < len(transcript.messages) or not evidence.quote.strip():
        return False
    return _squeeze(evidence.quote) in _squeeze(transcript.messages[evidence.message].text)


def _complete_members(rubric: Rubric, results: list[JudgeResult]) -> list[dict[str, str | float]]:
    """Per (judge, sample), its values for every criterion, where it gave them all."""
    members: dict[tuple[str, int], dict[str, str | float]] = {}
    for result in results:
        members.setdefault((result.model, result.sample), {}).update(result.values)
    names = {c.name for c in rubric.criteria}
    return [member for member in members.values() if set(member) >= names]


def _confidence(
    results: list[JudgeResult], reduced: dict[str, Reduced]
) -> tuple[float | None, Literal["agreement", "logprob_mass", "probability"] | None]:
    """The judges' own calibrated probability when every result has one (the least of them;
    repeated samples of a deterministic classifier would agree however unsure it is), else
    agreement among results when there are several per criterion, else the logprob mass."""
    probabilities = [r.probability for r in results]
    if all(p is not None for p in probabilities):
        return min(p for p in probabilities if p is not None), "probability"
    calls_per_group = len(results) // max(1, len({r.criteria for r in results}))
    if calls_per_group > 1:
        return min(r.agreement for r in reduced.values()), "agreement"
    masses = [r.numeric_mass for r in results if r.numeric_mass is not None]
    if masses:
        return min(masses), "logprob_mass"
    return None, None
