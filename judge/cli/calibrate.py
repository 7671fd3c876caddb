"""``judge calibrate``: a judge measured against reference labels or scores."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from judge.assembly import Reducer
from judge.cli.common import (
    CascadeOption,
    ExitCode,
    MapOption,
    app,
    cli_settings,
    closing,
    open_output,
    print_problems,
    read_inputs,
    stdout_console,
)
from judge.cli.grade import grade_all, plan_from_flags
from judge.column_map import ColumnMap
from judge.datasets import Dataset, Split
from judge.errors import UsageError
from judge.grading import Grader
from judge.rubric import Rubric, RubricLibrary
from judge.transcript import Transcript
from judge.verdict import Verdict


@app.command()
def calibrate(
    labels: Annotated[
        list[Path] | None,
        typer.Option(
            "--labels",
            metavar="FILE",
            help="Your reference data: transcript files whose records carry 'gold' (a label, a "
            "score, or criterion: value) (repeatable; needs --rubric).",
        ),
    ] = None,
    rubric_id: Annotated[
        str | None,
        typer.Option("--rubric", "-r", metavar="ID", help="The rubric --labels calibrates."),
    ] = None,
    mapping: MapOption = None,
    dataset: Annotated[
        Dataset, typer.Option(help="Without --labels: a built-in reference set.")
    ] = Dataset.XSTEST,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Where the built-in sets are: the shared data folder holding xstest/ and "
            "emergent_misalignment/ (env JUDGE_SHARED_DATA; default ../shared/data).",
        ),
    ] = None,
    split: Annotated[
        Split, typer.Option(help="Part of the data (xstest has dev/heldout).")
    ] = Split.ALL,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", metavar="MODEL", help="Judge model(s); default offline."),
    ] = None,
    cascade: CascadeOption = None,
    api_base: Annotated[
        str | None, typer.Option(metavar="URL", help="OpenAI-compatible server.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="Use the first N records.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", metavar="FILE", help="Also write the verdicts here (JSONL)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", metavar="", help="JSON instead of tables.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", metavar="", help="No progress.")] = False,
) -> None:
    """Measure a judge against reference labels or scores, with 95% intervals (grading through
    the cache): your own labelled transcripts (--labels), or a built-in set (--dataset)."""
    from judge.calibration import agreement, gold_of
    from judge.views.tables import agreement_view

    settings = cli_settings(api_base=api_base)
    library = settings.rubric_library()
    if labels:
        if rubric_id is None:
            raise UsageError("--labels needs --rubric: the rubric the labels are for")
        rubric = library.get(rubric_id)
        transcripts, problems = read_inputs(
            labels, settings.max_transcript_chars, ColumnMap.parse(mapping or [])
        )
        print_problems(problems)
        source = ", ".join(str(path) for path in labels)
        if not any(gold_of(rubric, t.metadata) for t in transcripts):
            labels_of = ", ".join(c.name for c in rubric.criteria)
            raise UsageError(
                f"no record of {source} carries a reference value for rubric {rubric.id}: give "
                f"each a 'gold' (a value, or {{criterion: value}} for its criteria {labels_of}), "
                "in its metadata or with --map gold=COLUMN"
            )
    else:
        transcripts, rubric = _reference_set(dataset, data_dir, split, library)
        source = f"{dataset} ({split})"
    transcripts = transcripts[:limit] if limit else transcripts
    plan = plan_from_flags(settings, model, cascade, 1, Reducer.MAJORITY, keys=True)
    grader = Grader(plan, settings.open_cache(), concurrency=settings.concurrency)
    verdicts: list[Verdict] = []
    with open_output(out) as sink:
        grading = grade_all(
            grader, transcripts, [rubric], sink, show_progress=not quiet, collected=verdicts
        )
        asyncio.run(closing(grader, grading))
    result = agreement(rubric, verdicts)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    view = stdout_console()
    view.print(Text(f"{source}: {len(transcripts)} transcripts, rubric {rubric.id}"))
    stages = [", ".join(j.name for j in stage.judges) for stage in plan.stages]
    view.print(Text(f"judge: {' -> '.join(stages)}"))
    if plan.escalation is not None:
        escalated = sum(bool(v.cascade and v.cascade.stage) for v in verdicts)
        view.print(Text(f"cascade: {escalated} of {len(verdicts)} escalated past the first stage"))
    not_graded = ", ".join(f"{n} {kind}" for kind, n in (result.not_graded or {}).items()) or "0"
    view.print(Text(f"compared {result.n}; not graded: {not_graded}"))
    if result.n == 0:
        view.print("nothing to compare: no graded verdict has a reference value for this rubric")
        raise typer.Exit(ExitCode.INCOMPLETE)
    for renderable in agreement_view(result):
        view.print(renderable)


def _reference_set(
    dataset: Dataset, data_dir: Path | None, split: Split, library: RubricLibrary
) -> tuple[list[Transcript], Rubric]:
    from judge.datasets import DATASETS, load_dataset

    directory = data_dir or Path(os.environ.get("JUDGE_SHARED_DATA", "../shared/data"))
    try:
        transcripts = load_dataset(dataset, directory, split)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(
            f"{exc}. The built-in sets are the shared data of the judge repository "
            "(XSTest v2 completions with their human labels; the emergent-misalignment answers "
            "with their reference scores); give --data-dir the folder that holds xstest/ and "
            "emergent_misalignment/, or calibrate on your own data with --labels FILE --rubric ID"
        ) from None
    return transcripts, library.get(DATASETS[dataset][1])
