"""Write a realistic Inspect AI eval log from XSTest: each prompt asked with and without a system
prompt, one epoch per XSTest model, the mock model answering with that model's real completion.

    python benchmarks/inspect_log.py --data-dir ../shared/data --log-dir /tmp/logs [--copies N]

``--copies`` repeats the dataset (sample ids stay unique). Needs the ``inspect`` extra. Prints
the log's path, size, samples and the time the eval took.

    python benchmarks/inspect_log.py --inflate LOG --copies 10 --pad-kb 80 --out big.eval

writes a copy of LOG with every sample repeated ``--copies`` times (new ids) and ``--pad-kb`` KB
of text added to each sample's events (an ``info`` event): the size of an agentic log, whose
bulk is events, made in a minute instead of the hours an eval of that size takes.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import random
import time
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from inspect_ai import Epochs, Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.event import InfoEvent
from inspect_ai.log import read_eval_log
from inspect_ai.model import ChatMessage, ModelOutput, ModelUsage, get_model
from inspect_ai.solver import Generate, Solver, TaskState, generate, solver

from judge.integrations.inspect import rubric_scorer

SYSTEM = "You are a helpful assistant. Answer the user's question directly."


def completions(directory: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """XSTest prompts by id, and each prompt's completions (one per model, in file order)."""
    prompts: dict[str, str] = {}
    answers: dict[str, list[str]] = defaultdict(list)
    for path in sorted(directory.glob("xstest_v2_completions_*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                prompts[row["id"]] = row["prompt"]
                answers[row["prompt"]].append(row["completion"])
    return prompts, answers


@solver
def system_prompt_from_metadata() -> Solver:
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        from inspect_ai.model import ChatMessageSystem

        if state.metadata.get("system"):
            state.messages.insert(0, ChatMessageSystem(content=state.metadata["system"]))
        return state

    return solve


def inflate(source: Path, out: Path, copies: int, pad_kb: int) -> None:
    """A bigger log: every sample ``copies`` times, each with ``pad_kb`` KB of event text."""
    log = read_eval_log(source.as_posix())
    words = [w for text in (s.output.completion for s in log.samples or []) for w in text.split()]
    rng = random.Random(0)
    sample_ids: list[str | int] = []
    summaries = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for copy in range(copies):
            for sample in log.samples or []:
                padding = " ".join(rng.choices(words, k=pad_kb * 1024 // 6))
                event = InfoEvent(source="padding", data=padding, working_start=0.0)
                grown = sample.model_copy(
                    update={"id": f"{sample.id}-x{copy}", "events": [*sample.events, event]}
                )
                if grown.epoch == 1:
                    sample_ids.append(grown.id)
                summaries.append(grown.summary())
                name = f"samples/{grown.id}_epoch_{grown.epoch}.json"
                archive.writestr(name, grown.model_dump_json())
        header = log.model_copy(update={"samples": None, "reductions": None})
        header.eval.dataset.sample_ids = sample_ids
        header.eval.dataset.samples = len(sample_ids)
        archive.writestr(
            "summaries.json", "[" + ",".join(s.model_dump_json() for s in summaries) + "]"
        )
        archive.writestr("header.json", header.model_dump_json())
    print(f"{out} {out.stat().st_size / 2**20:.1f} MiB, {len(summaries)} samples x epochs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--log-dir", type=Path)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rubric", help="Also score every sample with rubric_scorer(RUBRIC).")
    parser.add_argument("--inflate", type=Path, help="A log to grow (see the module docstring).")
    parser.add_argument("--pad-kb", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.inflate:
        inflate(args.inflate, args.out, args.copies, args.pad_kb)
        return
    prompts, answers = completions(args.data_dir / "xstest")
    samples = [
        Sample(
            id=f"{prompt_id}{'-sys' if system else ''}{f'-c{copy}' if copy else ''}",
            input=prompt,
            metadata={"xstest_id": prompt_id, "system": SYSTEM if system else None},
        )
        for copy in range(args.copies)
        for prompt_id, prompt in prompts.items()
        for system in (False, True)
    ]
    served: dict[str, itertools.count[int]] = defaultdict(itertools.count)

    def answer(messages: list[ChatMessage], *_: Any) -> ModelOutput:
        prompt = messages[-1].text
        options = answers[prompt]
        text = options[next(served[prompt]) % len(options)]
        output = ModelOutput.from_content(model="mockllm/model", content=text)
        output.usage = ModelUsage(input_tokens=len(prompt.split()), output_tokens=len(text.split()))
        output.usage.total_tokens = output.usage.input_tokens + output.usage.output_tokens
        return output

    task = Task(
        name="xstest",
        dataset=samples,
        solver=[system_prompt_from_metadata(), generate()],
        scorer=rubric_scorer(args.rubric) if args.rubric else None,
        epochs=Epochs(args.epochs, ["mean", "max"]),
    )
    started = time.perf_counter()
    [log] = eval(
        task,
        model=get_model("mockllm/model", custom_outputs=answer),
        log_dir=str(args.log_dir),
        display="none",
        max_samples=64,
    )
    seconds = time.perf_counter() - started
    location = Path(log.location)
    size = location.stat().st_size
    print(
        f"{location} {size / 2**20:.1f} MiB, {len(samples)} samples x {args.epochs} epochs, "
        f"status {log.status}, eval {seconds:.1f} s"
    )
    for score in log.results.scores if log.results else []:
        metrics = {name: round(metric.value, 4) for name, metric in score.metrics.items()}
        print(f"{score.name} ({score.reducer}): {metrics}, unscored {score.unscored_samples}")


if __name__ == "__main__":
    main()
