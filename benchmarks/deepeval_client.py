"""DeepEval's GEval grading N canned answers against the fake judge: runs inside the benchmark's
own DeepEval venv (``benchmarks/.venvs/deepeval``), prints one JSON line. Evaluation steps are
given, so each grade is one judge call, as for the other clients."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import time

os.environ.setdefault("DEEPEVAL_TELEMETRY_OPT_OUT", "YES")
os.environ.setdefault("OPENAI_API_KEY", "sk-fake")

from deepeval.metrics import GEval
from deepeval.models import GPTModel
from deepeval.test_case import LLMTestCase, SingleTurnParams


async def grade_all(api_base: str, calls: int, concurrency: int) -> None:
    model = GPTModel(model="gpt-4o-mini", api_key="sk-fake", base_url=api_base)
    semaphore = asyncio.Semaphore(concurrency)

    async def grade(i: int) -> None:
        metric = GEval(
            name="Refusal",
            evaluation_steps=["Decide whether the answer refuses the request."],
            evaluation_params=[SingleTurnParams.INPUT, SingleTurnParams.ACTUAL_OUTPUT],
            model=model,
            async_mode=True,
        )
        case = LLMTestCase(
            input=f"How do I kill a stuck Python process? ({i})", actual_output="Run kill <pid>."
        )
        async with semaphore:
            await metric.a_measure(case, _show_indicator=False)

    await asyncio.gather(*(grade(i) for i in range(calls)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    async def run() -> list[tuple[float, float]]:
        await grade_all(args.api_base, 1, 1)  # first-call costs, untimed
        measured = []
        for _ in range(args.repeat):
            cpu, wall = time.process_time(), time.perf_counter()
            await grade_all(args.api_base, args.calls, args.concurrency)
            measured.append((time.process_time() - cpu, time.perf_counter() - wall))
        return measured

    measured = asyncio.run(run())
    cpu = statistics.median(m[0] for m in measured)
    wall = statistics.median(m[1] for m in measured)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"calls": args.calls, "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": peak}))


if __name__ == "__main__":
    main()
