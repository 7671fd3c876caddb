"""Before and after, interleaved: the jobs API of this tree and of another revision, beside the
floor, against one fake judge, in alternating rounds.

    python benchmarks/ab.py BASE_REVISION [--store sqlite|redis] [--rounds 8]

This machine's speed drifts by tens of percent between runs, so a change is measured against
its base within one run: each round times the floor (raw aiohttp), then a job of 1,024 real
transcripts (C = 128, L = 200 ms) on each deployment, the two in alternating order. It prints each
round, then per tree the median ÷ floor and the mean CPU ms a verdict by process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jobs_bench
from deploy import deployment, fake_judge, run_job
from run import REPO, client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="git revision to compare this tree with")
    parser.add_argument("--store", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--transcripts", type=int, default=1024)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "base"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(base),
                        args.base], check=True)  # fmt: skip
        stack.callback(subprocess.run, ["git", "-C", str(REPO), "worktree", "remove", "--force",
                                        str(base)], check=False)  # fmt: skip
        # PYTHONSAFEPATH: ``python -m`` would put the working directory (this tree) first
        env = {"PYTHONPATH": str(base), "PYTHONSAFEPATH": "1"}
        found = subprocess.run([sys.executable, "-c", "import judge; print(judge.__file__)"],
                               env={**os.environ, **env}, capture_output=True, text=True,
                               check=True).stdout.strip()  # fmt: skip
        if not found.startswith(str(base)):
            raise SystemExit(f"the base deployment would import {found}, not the base tree")
        api_base = stack.enter_context(fake_judge(200))
        made = {
            "this tree": stack.enter_context(deployment(args.store, api_base, 128)),
            args.base: stack.enter_context(deployment(args.store, api_base, 128, env=env)),
        }
        for deployed in made.values():
            run_job(deployed.url, jobs_bench.job_body("real", 8, "warm"))
        floor: list[float] = []
        ratios: dict[str, list[float]] = {name: [] for name in made}
        cpu: dict[str, list[dict[str, float]]] = {name: [] for name in made}
        for number in range(args.rounds):
            measured = client("aiohttp", api_base, args.transcripts, 128, 1, data="real")
            floor.append(measured["calls"] / measured["wall_s"])
            names = list(made) if number % 2 == 0 else list(made)[::-1]
            for name in names:
                body = jobs_bench.job_body("real", args.transcripts, f"ab-{number}-{time.time()}")
                run = jobs_bench.timed(made[name], body)
                ratios[name].append(run["calls"] / run["wall_s"] / floor[-1])
                cpu[name].append({k: 1000 * v / run["calls"] for k, v in run["cpu"].items()})
            print(number, f"floor {floor[-1]:.0f}/s",
                  {name: round(ratios[name][-1], 3) for name in made}, file=sys.stderr)  # fmt: skip
        for name in made:
            by_process = {k: statistics.mean(c[k] for c in cpu[name]) for k in cpu[name][0]}
            print(f"{name}: ÷ floor {statistics.median(ratios[name]):.3f} (median of "
                  f"{args.rounds}), CPU ms a verdict {sum(by_process.values()):.3f} "
                  f"({', '.join(f'{k} {v:.3f}' for k, v in by_process.items())})")  # fmt: skip


if __name__ == "__main__":
    main()
