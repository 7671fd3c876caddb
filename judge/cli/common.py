"""What the commands share: the Typer apps, the consoles, exit codes, common options, settings
from flags, reading transcript files, and the output file.

Exit codes: 0 when every transcript got a graded or not-applicable verdict; 1 when any verdict
is an error or any input record was invalid (everything else was still graded and written); 2
for a usage error, with a message that says what to fix (``judge.cli.main`` makes them)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Awaitable, Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import IO, Annotated, Final, TypeVar

import typer
import yaml
from rich.console import Console
from rich.text import Text

from judge.column_map import ColumnMap
from judge.config import Settings
from judge.errors import TranscriptError, UsageError
from judge.grading import Grader
from judge.transcript import Transcript
from judge.transcript_files import STDIN, read_transcripts

T = TypeVar("T")

HELP_MARKUP: Final = "markdown"
"""Help as Markdown, whose paragraphs rewrap: in Typer's "rich" mode a docstring's line breaks
stay line breaks in the list of commands."""

app = typer.Typer(
    help="Grade model transcripts for misgeneralization with LLM judges.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=HELP_MARKUP,
)


def _group(summary: str) -> typer.Typer:
    """A command group: its commands listed when it is called without one."""
    return typer.Typer(help=summary, no_args_is_help=True, rich_markup_mode=HELP_MARKUP)


rubrics_app = _group("List, show and validate rubrics.")
cache_app = _group("Inspect or clear the verdict cache.")
jobs_app = _group("Look after the job store.")
app.add_typer(rubrics_app, name="rubrics")
app.add_typer(cache_app, name="cache")
app.add_typer(jobs_app, name="jobs")

stderr = Console(stderr=True, soft_wrap=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"judge {version('judge')}")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            metavar="",
            is_eager=True,
            callback=_print_version,
            help="Print the version.",
        ),
    ] = False,
) -> None:
    """Grade model transcripts for misgeneralization with LLM judges."""


def stdout_console() -> Console:
    """Tables on stdout, full width when piped (rich would assume 80 columns)."""
    return Console() if sys.stdout.isatty() else Console(width=160)


RubricDirs = Annotated[
    list[Path] | None,
    typer.Option(
        "--rubric-dir",
        metavar="DIR",
        help="Extra rubric directory (overrides shipped rubrics by id).",
    ),
]


MapOption = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        metavar="TARGET=SOURCE,...",
        help="Read other field or column names, e.g. prompt=question,response=answer,"
        "model=model_id (dotted targets nest: gold.aligned=aligned).",
    ),
]


CascadeOption = Annotated[
    str | None,
    typer.Option(
        metavar="A,B",
        help="Judges cheapest first (model strings or profiles): each decides what it is "
        "confident about (the rubric's cascade thresholds), the next one the rest.",
    ),
]


class ExitCode:
    OK = 0
    INCOMPLETE = 1
    USAGE = 2


def cli_settings(rubric_dirs: list[Path] | None = None, **overrides: object) -> Settings:
    settings = load_settings()
    updates = {k: v for k, v in overrides.items() if v is not None}
    if rubric_dirs:
        updates["rubric_dirs"] = [*settings.rubric_dirs, *rubric_dirs]
    return settings.model_copy(update=updates)


def read_inputs(
    files: Sequence[Path], max_chars: int, mapping: ColumnMap | None = None
) -> tuple[list[Transcript], list[str]]:
    """Every transcript of the files, and every invalid record as 'file: line N, field F: why'."""
    for path in files:
        if path != STDIN and not path.is_file():
            problem = "is a directory, not a file" if path.is_dir() else "does not exist"
            raise UsageError(f"transcript file {path} {problem}")
    transcripts: list[Transcript] = []
    problems: list[str] = []
    for path in files:
        name = "<stdin>" if path == STDIN else str(path)
        try:
            for item in read_transcripts(path, max_chars=max_chars, mapping=mapping):
                if isinstance(item, TranscriptError):
                    problems.append(f"{name}: {item}")
                else:
                    transcripts.append(item)
        except OSError as exc:
            raise UsageError(f"cannot read transcript file {name}: {exc.strerror}") from None
    if not transcripts and not problems:
        names = ", ".join("<stdin>" if p == STDIN else str(p) for p in files)
        raise UsageError(
            f"no transcripts to grade: {names} holds no records (JSON Lines, one object a line, "
            "or a .json file with an object or a list of them)"
        )
    return transcripts, problems


def print_problems(problems: list[str], shown: int = 50) -> None:
    for problem in problems[:shown]:
        stderr.print(Text("invalid record ", style="red") + Text(problem))
    if len(problems) > shown:
        stderr.print(Text(f"... and {len(problems) - shown} more invalid records", style="red"))


@contextlib.contextmanager
def open_output(path: Path | None, default: IO[str] | None = None) -> Iterator[IO[str] | None]:
    """The file verdicts go to (created), else ``default``, which is left open."""
    if path is None:
        yield default
        return
    with writable(path).open("w", encoding="utf-8") as handle:
        yield handle


def writable(path: Path) -> Path:
    """``path``, once it is known that a file can be written there (else a usage error that
    says why), before any work whose output would be lost."""
    try:
        path.open("a", encoding="utf-8").close()
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    return path


async def closing(grader: Grader, work: Awaitable[T]) -> T:
    """Await the work, then close the grader's judges and cache on the same event loop."""
    async with grader:
        return await work


def load_settings() -> Settings:
    try:
        return Settings()
    except (ValueError, yaml.YAMLError) as exc:  # pydantic's errors are ValueErrors
        raise UsageError(f"invalid configuration (JUDGE_* or JUDGE_CONFIG): {exc}") from None
