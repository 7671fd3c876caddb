"""Loaders for the labelled reference data in ``shared/data`` (for calibration and accuracy tests).

XSTest v2 completions become single-turn transcripts whose ``metadata.gold`` is the human
``final_label`` mapped onto the ``refusal`` rubric's labels. The split is by prompt, so that no
prompt's completions sit on both sides: prompts whose number is divisible by 3 are held out.

The emergent-misalignment answers become single-turn transcripts whose ``metadata.gold_scores``
holds the reference judge's ``aligned`` and ``coherent`` scores (gpt-4o-mini, logprob-weighted).
"""

from __future__ import annotations

import csv
from enum import StrEnum
from pathlib import Path

from judge.transcript import Transcript

XSTEST_LABELS = {
    "1_full_compliance": "full_compliance",
    "2_full_refusal": "full_refusal",
    "3_partial_refusal": "partial_refusal",
}


class Split(StrEnum):
    """Which part of a reference dataset: everything, the development prompts, or the held-out
    prompts that no heuristic was written or trained on."""

    ALL = "all"
    DEV = "dev"
    HELDOUT = "heldout"


class Dataset(StrEnum):
    """The built-in reference datasets (see ``DATASETS``)."""

    XSTEST = "xstest"
    EM = "em"


def xstest_split(transcript_id: str) -> Split:
    """``heldout`` for prompts v2-N with N divisible by 3, else ``dev``."""
    number = int(transcript_id.rsplit("-", 1)[-1])
    return Split.HELDOUT if number % 3 == 0 else Split.DEV


def load_xstest(directory: Path, split: Split = Split.ALL) -> list[Transcript]:
    """XSTest v2 completions of all five models, with gold labels in metadata."""
    files = sorted(directory.glob("xstest_v2_completions_*.csv"))
    if not files:
        raise FileNotFoundError(f"no xstest_v2_completions_*.csv files in {directory}")
    transcripts = []
    for path in files:
        model = path.stem.removeprefix("xstest_v2_completions_")
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                if split != Split.ALL and xstest_split(row["id"]) != split:
                    continue
                transcripts.append(
                    Transcript.from_prompt(
                        row["prompt"],
                        row["completion"],
                        id=f"{model}/{row['id']}",
                        metadata={
                            "model": model,
                            "prompt_id": row["id"],
                            "tags": [row["type"]],
                            "gold": XSTEST_LABELS[row["final_label"]],
                        },
                    )
                )
    return transcripts


def load_emergent_misalignment(directory: Path) -> list[Transcript]:
    """The scored answers of every ``eval_results_*.csv`` that has both scores."""
    transcripts = []
    for path in sorted(directory.glob("eval_results_*.csv")):
        model = path.stem.removeprefix("eval_results_")
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if not {"aligned", "coherent"} <= set(reader.fieldnames or []):
                continue
            for number, row in enumerate(reader):
                scores = {k: float(row[k]) if row[k] else None for k in ("aligned", "coherent")}
                transcripts.append(
                    Transcript.from_prompt(
                        row["question"],
                        row["answer"],
                        id=f"{model}/{number}",
                        metadata={
                            "model": model,
                            "prompt_id": row["question_id"],
                            "tags": ["emergent_misalignment"],
                            "gold_scores": scores,
                        },
                    )
                )
    if not transcripts:
        raise FileNotFoundError(f"no eval_results_*.csv with aligned and coherent in {directory}")
    return transcripts


DATASETS = {
    Dataset.XSTEST: ("xstest", "refusal"),
    Dataset.EM: ("emergent_misalignment", "emergent_misalignment"),
}
"""Dataset name -> (folder under the data directory, the rubric it calibrates)."""


def load_dataset(name: Dataset, data_dir: Path, split: Split = Split.ALL) -> list[Transcript]:
    """A reference dataset by name from the shared data directory."""
    folder, _ = DATASETS[name]
    if name == Dataset.XSTEST:
        return load_xstest(data_dir / folder, split)
    if split != Split.ALL:
        raise ValueError("the emergent-misalignment data has no dev/held-out split")
    return load_emergent_misalignment(data_dir / folder)
