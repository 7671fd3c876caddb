"""The ``judge`` command line: parse input, call the library, render results. One module a
command group (``grade``, ``report``, ``calibrate``, ``rubrics``, ``cache``, ``service``), over
what they share (``common``); ``main`` is the one place exceptions become exit codes.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from judge.cli import cache, calibrate, grade, report, rubrics, service  # noqa: F401 (commands)
from judge.cli.common import ExitCode, app, stderr
from judge.errors import UsageError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code; the one place exceptions become exit codes.

    Click reports its own usage errors (unknown option, bad value) with exit code 2; our
    ``UsageError`` gets the same code, with its message on stderr.
    """
    try:
        app(args=list(argv) if argv is not None else None, prog_name="judge")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else ExitCode.OK
    except UsageError as exc:
        stderr.print(Text("error: ", style="red") + Text(str(exc)))
        return ExitCode.USAGE
    return ExitCode.OK
