"""``judge report``: rates, comparisons and agreement from verdict files, as tables, JSON or
HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from judge.cli.common import (
    ExitCode,
    RubricDirs,
    app,
    cli_settings,
    print_problems,
    read_inputs,
    stderr,
    stdout_console,
    writable,
)
from judge.errors import UsageError


@app.command()
def report(
    files: Annotated[
        list[Path],
        typer.Argument(help="Verdict files (JSONL), e.g. from grade.", metavar="FILE..."),
    ],
    by: Annotated[
        str,
        typer.Option(
            metavar="KEYS", help="Group by any of: model, rubric, tag, judge (comma-separated)."
        ),
    ] = "model,rubric",
    compare: Annotated[
        tuple[str, str] | None,
        typer.Option(
            metavar="BASE TUNED", help="Two models to compare on shared prompts (metadata.model)."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", metavar="", help="JSON instead of tables.")
    ] = False,
    html: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Write a self-contained HTML report with plots here."),
    ] = None,
    order: Annotated[
        str,
        typer.Option(metavar="A,B,C", help="Checkpoints in training order (--html)."),
    ] = "",
    transcripts: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="FILE", help="Transcript files whose text the HTML report shows (repeatable)."
        ),
    ] = None,
    drill_down: Annotated[
        int, typer.Option(min=0, metavar="N", help="Flagged transcripts shown per rubric (--html).")
    ] = 20,
    rubric_dir: RubricDirs = None,
) -> None:
    """Flag rates with 95% intervals, counts of every status, paired model comparisons, and how
    far the judges agree (Krippendorff's alpha, Cohen's kappa) where there are several."""
    from judge.agreement import judge_agreement
    from judge.reports import compare as compare_models
    from judge.reports import rates, read_verdicts, report_json, unpaired

    skipped: list[str] = []
    verdicts = read_verdicts(files, skipped)
    for problem in skipped[:20]:
        stderr.print(Text("skipped ", style="yellow") + Text(problem))
    if len(skipped) > 20:
        stderr.print(Text(f"... and {len(skipped) - 20} more lines skipped", style="yellow"))
    if not verdicts:
        names = ", ".join(str(path) for path in files)
        raise UsageError(f"no verdicts to report: {names} holds none (JSON Lines from judge grade)")
    keys = [key.strip() for key in by.split(",") if key.strip()]
    notes = unpaired(verdicts, *compare) if compare else []
    if notes and notes[0].startswith("no verdict is of model"):
        raise UsageError(f"--compare: {notes[0]}")
    for note in notes:
        stderr.print(Text(f"no comparison for {note}", style="yellow"))
    if html is not None:
        from judge.views.html import render_html

        writable(html)
        settings = cli_settings(rubric_dir)
        texts, problems = (
            read_inputs(transcripts, settings.max_transcript_chars) if transcripts else ([], [])
        )
        print_problems(problems)
        page = render_html(
            verdicts,
            by=keys,
            compare=compare,
            order=[name.strip() for name in order.split(",") if name.strip()],
            rubrics=settings.rubric_library(),
            transcripts=texts,
            drill_down=drill_down,
        )
        html.write_text(page, encoding="utf-8")
        stderr.print(f"wrote {html} ({len(verdicts)} verdicts)", highlight=False)
        raise typer.Exit(ExitCode.INCOMPLETE if skipped else ExitCode.OK)
    rows = rates(verdicts, keys)
    comparisons = compare_models(verdicts, *compare) if compare else []
    agreement = judge_agreement(verdicts, keys)
    if as_json:
        typer.echo(report_json(rows, comparisons, agreement))
        raise typer.Exit(ExitCode.INCOMPLETE if skipped else ExitCode.OK)
    from judge.views.tables import comparison_lines, judge_agreement_tables, rates_table

    out = stdout_console()
    out.print(rates_table(rows, keys))
    for line in comparison_lines(comparisons):
        out.print(line)
    for table in judge_agreement_tables(agreement):
        out.print(table)
    if skipped:
        raise typer.Exit(ExitCode.INCOMPLETE)
