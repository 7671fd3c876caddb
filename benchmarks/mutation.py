"""Mutation testing of the modules that decide verdicts (mutmut 3): the share of small mistakes
(``<=`` for ``<``, a dropped condition, another constant) that the tests catch, per module.

    pip install -e ".[mutation]"
    python benchmarks/mutation.py                  # modules changed against main (git diff)
    python benchmarks/mutation.py --base HEAD~3    # ... against another revision
    python benchmarks/mutation.py --all            # every module in scope (an hour or more)
    python benchmarks/mutation.py judge/scoring.py # these modules
    python benchmarks/mutation.py --report         # the scores of the last run, without running
    python benchmarks/mutation.py --all --survivors  # only what the last run left alive or unrun

The scope is ``SCOPE`` below: whole modules, or for a module whose other parts decide nothing
about a verdict (the cache backends, the LLM judge's transport, the rubric loader's messages),
only the functions that do (``cache_key``, the judges' identities, the decision rules). mutmut
mutates no decorated function (properties, validators): their rules are tested all the same.

mutmut copies the package into ``mutants/`` and runs
the in-process tests there (``[tool.mutmut]`` in pyproject.toml), each mutant against the tests
that reach the mutated function; the script gives them Redis (a ``redis-server`` of its own
unless ``JUDGE_TEST_REDIS_URL`` is set) and the shared data, as CI does.

A run re-runs every mutant it names (mutmut keeps no result for a mutant named on its command
line); ``--survivors`` names only those without a kill, so it also finishes an interrupted run.

Mutants that cannot change behaviour are listed with a reason in ``tests/mutants.md``; a score
is killed / (mutants - equivalent). The script exits 1 when a module is below ``--floor``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EQUIVALENT = REPO / "tests" / "mutants.md"

SCOPE: dict[str, list[str]] = {
    "judge/scoring.py": ["*"],
    "judge/parsing.py": ["*"],
    "judge/cache.py": ["x_cache_key__mutmut_*"],
    "judge/plan.py": ["*"],
    "judge/rubric.py": [  # the decision rules, derived scores and the reply model
        "xǁConditionǁholds__mutmut_*",
        "xǁCriterionǁis_flagged_label__mutmut_*",
        "xǁRubricǁcriterion__mutmut_*",
        "xǁRubricǁderive__mutmut_*",
        "xǁRubricǁis_flagged__mutmut_*",
        "xǁRubricǁ_flag_problems__mutmut_*",
        "x__output_model__mutmut_*",
    ],
    "judge/formula.py": ["*"],
    "judge/assembly.py": ["*"],
    "judge/shape.py": ["*"],
    "judge/reports.py": ["*"],
    "judge/calibration.py": ["*"],
    "judge/heuristics/__init__.py": ["*"],
    "judge/heuristics/answers.py": ["*"],
    "judge/heuristics/code.py": ["*"],
    "judge/heuristics/constraints.py": ["*"],
    "judge/heuristics/identity.py": ["*"],
    "judge/json_input.py": ["*"],
    "judge/neutralize.py": ["*"],
    "judge/judges/llm.py": ["xǁLLMJudgeǁidentity__mutmut_*", "xǁLLMJudgeǁ_decoding__mutmut_*"],
    "judge/judges/offline.py": ["xǁOfflineJudgeǁidentity__mutmut_*"],
}
"""Module -> the mutant names (after the module's dotted name) that are in scope."""

KILLED = {1, 3, 36, 37, -24, 24, 152, 255}
"""mutmut exit codes that count as caught: a failing test, a crash, a timeout, a type error."""


def module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")


def patterns(paths: list[str]) -> list[str]:
    return [f"{module_name(path)}.{pattern}" for path in paths for pattern in SCOPE[path]]


def changed(base: str) -> list[str]:
    """The modules in scope that differ from ``base`` (committed or not)."""
    diff = subprocess.run(
        ["git", "diff", "--name-only", base, "--", "judge/"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [path for path in SCOPE if path in diff]


def equivalent() -> dict[str, str]:
    """Mutant name -> why it cannot change behaviour (``tests/mutants.md``, one a line:
    ``- `name`: reason``)."""
    found = {}
    for line in EQUIVALENT.read_text().splitlines():
        if line.startswith("- `") and "`: " in line:
            name, reason = line[3:].split("`: ", 1)
            found[name] = reason
    return found


def results(paths: list[str]) -> dict[str, dict[str, int | None]]:
    """Mutant name -> mutmut exit code, per module, from mutmut's meta files."""
    found = {}
    for path in paths:
        meta = REPO / "mutants" / f"{path}.meta"
        codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.is_file() else {}
        wanted = patterns([path])
        found[path] = {
            name: code
            for name, code in codes.items()
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in wanted)
        }
    return found


def report(paths: list[str], floor: float) -> bool:
    """Print a table of scores; whether every module reaches ``floor``."""
    marked = equivalent()
    print("| module | killed | equivalent | survived | not run | score |")
    print("|---|---:|---:|---:|---:|---:|")
    ok = True
    for path, codes in results(paths).items():
        killed = sum(1 for code in codes.values() if code in KILLED)
        # a marked mutant that a test kills was not equivalent: the mark is stale (renumbered?)
        same = [name for name, code in codes.items() if name in marked and code not in KILLED]
        for name in codes:
            if name in marked and name not in same:
                print(f"  marked equivalent but killed (stale mark?): {name}", file=sys.stderr)
        unrun = [name for name, code in codes.items() if code is None and name not in marked]
        survived = [
            name
            for name, code in codes.items()
            if code not in KILLED and code is not None and name not in marked
        ]
        counted = len(codes) - len(same)
        score = killed / counted if counted else 1.0
        ok &= score >= floor and not unrun
        print(
            f"| `{path}` | {killed}/{counted} | {len(same)} | {len(survived)} | {len(unrun)} "
            f"| {score:.0%} |"
        )
        for name in survived:
            print(f"  survived: {name}", file=sys.stderr)
    return ok


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def survivors(paths: list[str]) -> list[str]:
    """The mutants in scope that the last run did not kill (or did not run), equivalents aside."""
    marked = equivalent()
    return [
        name
        for codes in results(paths).values()
        for name, code in codes.items()
        if code not in KILLED and name not in marked
    ]


def run(paths: list[str], names: list[str] | None = None) -> None:
    env = dict(os.environ)
    env.setdefault("JUDGE_SHARED_DATA", str(REPO.parent / "shared" / "data"))
    env["HYPOTHESIS_PROFILE"] = "traced"  # tests/conftest.py: no health check on slow inputs
    redis = None
    scratch = Path(tempfile.mkdtemp(prefix="judge-mutation-"))
    # pytest's own temporary directories, away from /tmp/pytest-of-<user>: each run starts by
    # deleting the oldest there, and thousands of runs would sweep away other sessions' ones
    env["PYTEST_DEBUG_TEMPROOT"] = str(scratch)
    if "JUDGE_TEST_REDIS_URL" not in env and shutil.which("redis-server"):
        port = free_port()
        redis = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(scratch),
            ],
            stdout=subprocess.DEVNULL,
        )
        env["JUDGE_TEST_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    try:
        command = [sys.executable, "-m", "mutmut", "run", *(names or patterns(paths))]
        subprocess.run(command, cwd=REPO, env=env, check=False)
    finally:
        if redis is not None:
            redis.terminate()
            redis.wait(10)
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--base", default="main", help="mutate the modules changed against this")
    which.add_argument("--all", action="store_true", help="mutate every module in scope")
    parser.add_argument("modules", nargs="*", metavar="MODULE", help="mutate these (in SCOPE)")
    parser.add_argument("--report", action="store_true", help="only print the last scores")
    parser.add_argument(
        "--survivors", action="store_true", help="run again only the mutants left alive"
    )
    parser.add_argument("--floor", type=float, default=0.9, help="lowest score that passes")
    options = parser.parse_args()
    unknown = [path for path in options.modules if path not in SCOPE]
    if unknown:
        parser.error(f"not in scope: {', '.join(unknown)} (scope: {', '.join(SCOPE)})")
    if options.modules:
        paths = options.modules
    elif options.all or options.report:
        paths = list(SCOPE)
    else:
        paths = changed(options.base)
    if not paths:
        print(f"no module in scope changed against {options.base}")
        return 0
    if options.survivors:
        names = survivors(paths)
        if names:
            run(paths, names)
    elif not options.report:
        run(paths)
    return 0 if report(paths, options.floor) else 1


if __name__ == "__main__":
    sys.exit(main())
