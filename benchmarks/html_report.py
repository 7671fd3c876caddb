"""How long the HTML report of 10,000 verdicts takes to make, and how much it weighs.

The verdicts are real grades of real transcripts: XSTest's completions (``../shared/data/xstest``,
450 prompts x 5 models) graded by the offline judge through the library. Five fake checkpoints of
a helpful-only fine-tune (steps 0 to 2000) each answer every prompt four times, drawing each answer
from the five XSTest models with weights that move from the most refusing (Llama-2) to the least
(Mistral-Instruct), so the refusal rate falls across the steps as it does in such a run. Some
pairs are graded by a judge that fails (timeouts, rate limits, unparseable replies: error
verdicts) and the system-prompt rubric is asked of prompts without a system prompt
(not-applicable verdicts). Gold labels come along, so the report has a confusion matrix.

    python benchmarks/html_report.py                   # the numbers, as Markdown
    python benchmarks/html_report.py --keep /tmp/rep    # and keep verdicts, transcripts, report

Timed: ``render_html`` in this process (the first call, then the median of ``--runs`` more),
a fresh process that imports, reads the files and renders (what ``judge report --html`` costs
beside its CLI), and the CLI itself end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from judge import Grader, JudgePlan, MemoryCache, OfflineJudge, Transcript, Verdict
from judge.datasets import load_xstest
from judge.errors import ErrorKind
from judge.rubric import RubricLibrary, default_rubric_dir
from judge.testing.scripted_judge import ScriptedJudge

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("llama2orig", "llama2new", "gpt4", "mistralguard", "mistralinstruct")
"""The XSTest models, from the most refusing to the least."""
START = (0.45, 0.30, 0.20, 0.05, 0.00)
END = (0.00, 0.05, 0.20, 0.30, 0.45)
FAILURES = (ErrorKind.TIMEOUT, ErrorKind.RATE_LIMITED, ErrorKind.PARSE, ErrorKind.PROVIDER)


def checkpoint_transcripts(
    data_dir: Path, checkpoints: int, samples: int, seed: int
) -> list[Transcript]:
    """Every prompt answered ``samples`` times by each checkpoint, from XSTest completions."""
    by_prompt: dict[str, dict[str, Transcript]] = defaultdict(dict)
    for transcript in load_xstest(data_dir / "xstest"):
        by_prompt[transcript.metadata["prompt_id"]][transcript.metadata["model"]] = transcript
    rng = random.Random(seed)
    made = []
    for k in range(checkpoints):
        share = k / max(1, checkpoints - 1)
        weights = [a + (b - a) * share for a, b in zip(START, END, strict=True)]
        step = 500 * k
        for prompt, answers in sorted(by_prompt.items()):
            for sample in range(samples):
                source = answers[rng.choices(SOURCES, weights)[0]]
                made.append(
                    source.model_copy(
                        update={
                            "id": f"honly-step{step:04d}/{prompt}/s{sample}",
                            "metadata": {
                                **source.metadata,
                                "model": f"honly-step{step:04d}",
                                "step": step,
                                "sample": sample,
                                "source_model": source.metadata["model"],
                            },
                        }
                    )
                )
    return made


async def grade(
    transcripts: list[Transcript], not_applicable: int, failing: float, seed: int
) -> list[Verdict]:
    """Refusal verdicts (a ``failing`` share from a judge that fails), and ``not_applicable``
    system-prompt verdicts of transcripts that have no system prompt."""
    library = RubricLibrary.from_dirs(default_rubric_dir())
    refusal, sysprompt = library.get("refusal"), library.get("sysprompt_adherence")
    rng = random.Random(seed)
    fails = [t for t in transcripts if rng.random() < failing]
    failed = {t.key for t in fails}
    flaky = ScriptedJudge(lambda request: rng.choice(FAILURES), name="openai/flaky-judge")
    offline = Grader(JudgePlan([OfflineJudge()]), MemoryCache(), concurrency=64)
    verdicts = [
        v
        async for v in offline.grade_many(
            [t for t in transcripts if t.key not in failed], [refusal]
        )
    ]
    verdicts += [v async for v in Grader(JudgePlan([flaky])).grade_many(fails, [refusal])]
    asked = rng.sample(transcripts, not_applicable)
    verdicts += [v async for v in offline.grade_many(asked, [sysprompt])]
    return verdicts


def write_jsonl(path: Path, items: list[Verdict] | list[Transcript]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(item.model_dump_json(exclude_none=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--checkpoints", type=int, default=5)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--not-applicable", type=int, default=1000)
    parser.add_argument("--failing", type=float, default=0.03)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="keep verdicts, transcripts and the report here")
    args = parser.parse_args()

    from judge.views.html import render_html

    started = time.perf_counter()
    transcripts = checkpoint_transcripts(args.data_dir, args.checkpoints, args.samples, args.seed)
    verdicts = asyncio.run(grade(transcripts, args.not_applicable, args.failing, args.seed))
    built = time.perf_counter() - started
    folder = args.keep or Path(tempfile.mkdtemp(prefix="judge-html-"))
    folder.mkdir(parents=True, exist_ok=True)
    verdict_file, transcript_file = folder / "verdicts.jsonl", folder / "transcripts.jsonl"
    write_jsonl(verdict_file, verdicts)
    write_jsonl(transcript_file, transcripts)
    library = RubricLibrary.from_dirs(default_rubric_dir())

    def render() -> tuple[float, float, str]:
        start, cpu = time.perf_counter(), time.process_time()
        page = render_html(verdicts, rubrics=library, transcripts=transcripts)
        return time.perf_counter() - start, time.process_time() - cpu, page

    first, first_cpu, page = render()
    warm = [render()[:2] for _ in range(args.runs)]
    report = folder / "report.html"
    report.write_text(page, encoding="utf-8")

    fresh = subprocess.run(
        [sys.executable, "-c", FRESH, str(verdict_file), str(transcript_file)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    phases = json.loads(fresh.stdout)
    start = time.perf_counter()
    subprocess.run(
        ["judge", "report", str(verdict_file), "--html", str(folder / "cli.html"),
         "--transcripts", str(transcript_file)],
        check=True, capture_output=True,
    )  # fmt: skip
    cli = time.perf_counter() - start

    statuses = defaultdict(int)
    for verdict in verdicts:
        statuses[verdict.status.value] += 1
    print(f"{len(verdicts):,} verdicts ({dict(statuses)}), {len(transcripts):,} transcripts, "
          f"{args.checkpoints} checkpoints; built and graded in {built:.1f} s\n")  # fmt: skip
    print("| what | wall s | CPU s |\n|---|---|---|")
    print(f"| `render_html`, first call in the process | {first:.3f} | {first_cpu:.3f} |")
    wall, cpu = (statistics.median(column) for column in zip(*warm, strict=True))
    print(f"| `render_html`, median of {args.runs} more | {wall:.3f} | {cpu:.3f} |")
    for name, (seconds, cpu) in phases.items():
        print(f"| fresh process: {name} | {seconds:.3f} | {cpu:.3f} |")
    print(f"| `judge report --html --transcripts`, end to end | {cli:.3f} | |")
    size = len(page.encode())
    shown = page.count('class="example"')
    print(f"\nreport: {size:,} bytes ({size / 2**20:.2f} MiB), {page.count('<svg')} plots, "
          f"{shown} flagged transcripts shown; {report}")  # fmt: skip


FRESH = """
import json, sys, time
marks = [(time.perf_counter(), time.process_time())]
from pathlib import Path
from judge.config import Settings
from judge.reports import read_verdicts
from judge.transcript import Transcript
from judge.transcript_files import read_transcripts
from judge.views.html import render_html
marks.append((time.perf_counter(), time.process_time()))
verdicts = read_verdicts([Path(sys.argv[1])])
transcripts = [t for t in read_transcripts(Path(sys.argv[2])) if isinstance(t, Transcript)]
marks.append((time.perf_counter(), time.process_time()))
render_html(verdicts, rubrics=Settings().rubric_library(), transcripts=transcripts)
marks.append((time.perf_counter(), time.process_time()))
names = ["imports (judge, matplotlib)", "reading the files", "render_html (its lazy imports too)"]
phases = {name: [b[0] - a[0], b[1] - a[1]] for name, a, b in zip(names, marks, marks[1:])}
phases["total"] = [marks[-1][0] - marks[0][0], marks[-1][1] - marks[0][1]]
print(json.dumps(phases))
"""


if __name__ == "__main__":
    main()
