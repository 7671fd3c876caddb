"""``judge rubrics``: list, show and validate rubric files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from judge.cli.common import (
    RubricDirs,
    cli_settings,
    rubrics_app,
)
from judge.errors import UsageError
from judge.rubric import default_rubric_dir, load_rubric


@rubrics_app.command("list")
def rubrics_list(rubric_dir: RubricDirs = None) -> None:
    """List the rubrics, a tab-separated line each: id, version, category, criteria, required
    transcript shape, and the first sentence of what it detects."""
    for rubric in cli_settings(rubric_dir).rubric_library():
        criteria = ",".join(c.name for c in rubric.criteria)
        requires = ",".join(r.value for r in rubric.requires)
        summary = _first_sentence(" ".join(rubric.description.split()))
        typer.echo(
            f"{rubric.id}\tv{rubric.version}\t{rubric.category}\t{criteria}\t"
            f"requires {requires}\t{summary}"
        )


@rubrics_app.command("show")
def rubrics_show(rubric_id: str, rubric_dir: RubricDirs = None) -> None:
    """Print one rubric as JSON, with its content hash and output schema."""
    rubric = cli_settings(rubric_dir).rubric_library().get(rubric_id)
    document = {
        **rubric.model_dump(mode="json"),
        "hash": rubric.content_hash,
        "output_schema": rubric.response_schema if rubric.structured_criteria else None,
    }
    typer.echo(_json(document))


@rubrics_app.command("validate")
def rubrics_validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Rubric files or directories; default: shipped.")
    ] = None,
) -> None:
    """Validate rubric files; exit 2 and say what is wrong if any is invalid."""
    files: list[Path] = []
    for path in paths or [default_rubric_dir()]:
        files += sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    if not files:
        raise UsageError("no rubric files found to validate")
    problems = []
    for path in files:
        try:
            rubric = load_rubric(path)
            typer.echo(f"ok  {path}  {rubric.id} v{rubric.version}  {rubric.content_hash[:12]}")
        except UsageError as exc:
            problems += str(exc).splitlines()
    if problems:
        count = f"{len(problems)} problem{'s' * (len(problems) > 1)}"
        raise UsageError(f"{count} in the rubrics:\n" + "\n".join(problems))


def _json(document: object) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


def _first_sentence(text: str) -> str:
    """Up to the first full stop outside double quotes (a quoted "Are you sure?" is no end)."""
    quoted = False
    for index, char in enumerate(text):
        quoted ^= char == '"'
        if char == "." and not quoted and text[index + 1 : index + 2] in (" ", ""):
            return text[: index + 1]
    return text.rstrip(".") + "."
