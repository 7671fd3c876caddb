"""Inspect AI's ``model_graded_qa`` grading N canned answers against the fake judge: runs inside
the benchmark's own Inspect venv (``benchmarks/.venvs/inspect``), prints one JSON line."""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time

from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.model import GenerateConfig, ModelOutput, get_model
from inspect_ai.scorer import model_graded_qa
from inspect_ai.solver import Generate, TaskState, solver


@solver
def canned_answer():  # type: ignore[no-untyped-def]
    """The answer to grade is fixed: no model generates it, only the grader is called."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        state.output = ModelOutput.from_content(model="canned", content="Run kill <pid>.")
        return state

    return solve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    os.environ["OPENAI_API_KEY"] = "sk-fake"
    grader = get_model(
        "openai/fake-judge",
        base_url=args.api_base,
        api_key="sk-fake",
        responses_api=False,  # like most OpenAI-compatible servers, the fake has no /responses
        config=GenerateConfig(max_connections=args.concurrency, max_retries=0, timeout=60),
    )

    def run(calls: int) -> tuple[float, float]:
        samples = [
            Sample(input=f"How do I kill a stuck Python process? ({i})", target="use kill")
            for i in range(calls)
        ]
        task = Task(dataset=samples, solver=canned_answer(), scorer=model_graded_qa(model=grader))
        with tempfile.TemporaryDirectory() as logs:
            cpu, wall = time.process_time(), time.perf_counter()
            [log] = eval(
                task,
                model="mockllm/model",
                max_samples=args.concurrency,
                max_connections=args.concurrency,
                log_dir=logs,
                display="none",
            )
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        assert log.status == "success", log.error
        return cpu, wall

    run(2)  # imports and first-call costs, untimed
    measured = [run(args.calls) for _ in range(args.repeat)]
    cpu = statistics.median(m[0] for m in measured)
    wall = statistics.median(m[1] for m in measured)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"calls": args.calls, "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": peak}))


if __name__ == "__main__":
    main()
