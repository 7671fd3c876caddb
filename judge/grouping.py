"""Which verdicts a batch yields: one per (transcript, single rubric), one per (group, paired or
group rubric), numbered so that a job can tell which of them it already has.

Numbering: (transcript i, single rubric r) is ``i * n_single + r``; after all of those, for each
group rubric in turn, its subjects in order: the groups sorted by id, then the transcripts that
carry no ``metadata.group`` (each gets a ``not_applicable`` verdict that says so).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from judge.rubric import Rubric
from judge.transcript import Subject, Transcript, TranscriptGroup

Unit = tuple[int, Subject, Rubric]


def group_subjects(transcripts: Iterable[Transcript]) -> list[Subject]:
    """Groups by ``metadata.group`` (sorted by id), then the ungrouped transcripts in order."""
    groups: dict[str, list[Transcript]] = {}
    ungrouped: list[Subject] = []
    for transcript in transcripts:
        group = transcript.metadata.get("group")
        if group is None:
            ungrouped.append(transcript)
        else:
            groups.setdefault(str(group), []).append(transcript)
    return [TranscriptGroup.of(gid, members) for gid, members in sorted(groups.items())] + ungrouped


def units(transcripts: Iterable[Transcript], rubrics: Sequence[Rubric]) -> Iterator[Unit]:
    """Every verdict's (number, subject, rubric), single rubrics first and lazily."""
    singles = [r for r in rubrics if not r.is_group]
    groupwise = [r for r in rubrics if r.is_group]
    kept: list[Transcript] = []
    count = 0
    for index, transcript in enumerate(transcripts):
        count = index + 1
        for r, rubric in enumerate(singles):
            yield index * len(singles) + r, transcript, rubric
        if groupwise:
            kept.append(transcript)
    yield from group_units(kept, groupwise, offset=count * len(singles))


def group_units(
    transcripts: Sequence[Transcript], rubrics: Sequence[Rubric], *, offset: int
) -> Iterator[Unit]:
    """The units of the group rubrics, numbered from ``offset``."""
    subjects = group_subjects(transcripts)
    for g, rubric in enumerate(rubrics):
        for k, subject in enumerate(subjects):
            yield offset + g * len(subjects) + k, subject, rubric


def count_units(transcripts: Sequence[Transcript], rubrics: Sequence[Rubric]) -> int:
    """How many verdicts ``units`` yields for these inputs."""
    singles = sum(1 for r in rubrics if not r.is_group)
    groupwise = sum(1 for r in rubrics if r.is_group)
    subjects = len(group_subjects(transcripts)) if groupwise else 0
    return len(transcripts) * singles + groupwise * subjects
