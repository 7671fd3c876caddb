"""``judge cache``: the verdict cache's size, and clearing it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from judge.cli.common import (
    ExitCode,
    cache_app,
    cli_settings,
)


@cache_app.command("stats")
def cache_stats(
    cache_dir: Annotated[Path | None, typer.Option(metavar="DIR", help="Cache directory.")] = None,
) -> None:
    """Entries and size of the verdict cache."""
    cache = cli_settings(cache_dir=cache_dir).open_cache()
    try:
        stats = cache.stats()
    finally:
        asyncio.run(cache.close())
    typer.echo(f"backend: {stats.backend}\nlocation: {stats.location}\nentries: {stats.entries}")
    typer.echo(f"size: {stats.size_bytes} bytes")


@cache_app.command("clear")
def cache_clear(
    cache_dir: Annotated[Path | None, typer.Option(metavar="DIR", help="Cache directory.")] = None,
    yes: Annotated[
        bool, typer.Option("--yes", metavar="", help="Do not ask for confirmation.")
    ] = False,
) -> None:
    """Delete every cached judge result."""
    cache = cli_settings(cache_dir=cache_dir).open_cache()
    try:
        if not yes and not typer.confirm(f"clear {cache.stats().entries} cached results?"):
            raise typer.Exit(ExitCode.INCOMPLETE)
        typer.echo(f"cleared {cache.clear()} entries")
    finally:
        asyncio.run(cache.close())
