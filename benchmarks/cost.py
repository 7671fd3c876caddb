"""What judging costs, measured: the dry run's estimate against the tokens a provider counts, the
budget's overshoot under concurrency, the cascade's saving and accuracy, and the share of every
shipped rubric's prompt that providers can cache.

    python benchmarks/cost.py --data-dir ../shared/data [--out results-cost.json]

Everything runs against the fake OpenAI-compatible server (``judge.testing.fake_server``), which
counts tokens with GPT-4o's tokenizer and bills repeated prefixes as cached the way OpenAI does.
The transcripts are real: XSTest's completions and the emergent-misalignment answers in
``--data-dir``.

- estimate: ``judge.estimate.estimate`` for every shipped single-transcript rubric on 400 real
  transcripts, then the same work graded; input tokens estimated / counted by the server.
- budget: 200 transcripts graded at concurrency 16 under a budget that stops the run part way,
  once with valid replies and once with every first reply invalid (so every call re-asks, the
  one way a call costs more than it reserved); spent / limit and the overshoot in calls.
- cascade: the offline refusal judge first, then a *perfect* LLM judge (the fake server answers
  with the human label), on the XSTest dev split and on the held-out split: share decided
  offline, accuracy there, the cascade's accuracy, LLM calls saved. The classifier was trained
  on dev, so dev figures are in-sample (the threshold itself was chosen on out-of-fold
  predictions there: ``benchmarks/refusal_cascade.py``); held-out is what counts.
- prefix: per shipped rubric and call group, the static prefix's tokens and their share of the
  prompt over real transcripts, against the providers' 1,024-token minimum for caching.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from judge.budget import Budget  # noqa: E402
from judge.cache import MemoryCache  # noqa: E402
from judge.cost import Prices  # noqa: E402
from judge.datasets import Split, load_emergent_misalignment, load_xstest  # noqa: E402
from judge.estimate import estimate  # noqa: E402
from judge.grading import Grader  # noqa: E402
from judge.grouping import units  # noqa: E402
from judge.judges import LLMJudge, OfflineJudge  # noqa: E402
from judge.neutralize import neutralize  # noqa: E402
from judge.plan import JudgePlan  # noqa: E402
from judge.prompt import render_logprob, render_structured, static_lengths  # noqa: E402
from judge.rubric import RubricLibrary, default_rubric_dir  # noqa: E402
from judge.testing.fake_server import (  # noqa: E402
    FakeJudgeServer,
    Reply,
    echo_label_responder,
    prompt_token_ids,
)
from judge.transcript import Transcript  # noqa: E402
from judge.verdict import Status  # noqa: E402

MODEL = "openai/gpt-4o-mini"
ASSISTANT = re.compile(r'role="assistant">\n(.*?)\n</message>', re.DOTALL)


def real_transcripts(data_dir: Path, count: int) -> list[Transcript]:
    xstest = load_xstest(data_dir / "xstest", Split.DEV)
    em = load_emergent_misalignment(data_dir / "emergent_misalignment")
    return [
        *xstest[:: max(1, len(xstest) // (count // 2))],
        *em[:: max(1, len(em) // (count // 2))],
    ]


async def measure_estimate(server: FakeJudgeServer, library: RubricLibrary, data: Path) -> Any:
    transcripts = real_transcripts(data, 400)
    rubrics = [r for r in library if not r.is_group]
    judge = LLMJudge(MODEL, api_base=server.api_base, api_key="sk-fake")
    plan, cache = JudgePlan([judge]), MemoryCache()
    server.reset()
    dry = await estimate(units(transcripts, rubrics), plan, cache)
    async with Grader(plan, cache, concurrency=32) as grader:
        verdicts = [v async for v in grader.grade_many(transcripts, rubrics)]
    counted = sum(len(prompt_token_ids(body["messages"])) for body in server.requests)
    billed_out = sum(j.output_tokens or 0 for v in verdicts for j in v.judges)
    return {
        "transcripts": len(transcripts),
        "rubrics": len(rubrics),
        "pairs": dry.pairs,
        "calls": dry.calls_to_make,
        "requests": server.request_count,
        "input_estimated": dry.input_tokens,
        "input_counted": counted,
        "input_ratio": dry.input_tokens / counted,
        "output_estimated": dry.output_tokens,
        "output_counted": billed_out,
        "cost_estimated": dry.cost_usd,
        "cost_billed": sum(v.cost_usd for v in verdicts),
    }


async def measure_budget(server: FakeJudgeServer, library: RubricLibrary, data: Path) -> Any:
    transcripts = real_transcripts(data, 200)
    rubric = library.get("refusal")
    price = Prices(input=1e-6, output=4e-6)
    results = {}

    def reasking(body: dict[str, Any]) -> Reply:
        if len(body["messages"]) > 2 and body["messages"][-2]["role"] == "assistant":
            return echo_label_responder(body)
        return Reply(content="not json")

    for name, responder in (
        ("valid replies", echo_label_responder),
        ("every call re-asks", reasking),
    ):
        server.reset()
        server.responder = responder
        judge = LLMJudge(MODEL, api_base=server.api_base, api_key="sk", price=price, max_tokens=100)
        limit = 0.05
        async with Grader(JudgePlan([judge]), MemoryCache(), concurrency=16) as grader:
            budget = Budget(limit)
            verdicts = [v async for v in grader.grade_many(transcripts, [rubric], budget=budget)]
        costs = [v.cost_usd for v in verdicts if v.status == Status.GRADED]
        spent = sum(v.cost_usd for v in verdicts)
        results[name] = {
            "limit": limit,
            "spent": spent,
            "spent_over_limit": spent / limit,
            "graded": len(costs),
            "stopped": sum(bool(v.error and v.error.kind == "budget") for v in verdicts),
            "overshoot_in_mean_calls": max(0.0, spent - limit) / statistics.fmean(costs),
        }
    server.responder = echo_label_responder
    return results


async def measure_cascade(server: FakeJudgeServer, library: RubricLibrary, data: Path) -> Any:
    rubric = library.get("refusal")
    results = {}
    for split in (Split.DEV, Split.HELDOUT):
        transcripts = load_xstest(data / "xstest", split)
        gold = {neutralize(t.last_text("assistant")): t.metadata["gold"] for t in transcripts}

        def perfect(body: dict[str, Any], gold: dict[str, str] = gold) -> Reply:
            reply = ASSISTANT.findall(body["messages"][-1]["content"])[-1]
            return Reply(
                content=json.dumps({"reasoning": "gold", "evidence": [], "refusal": gold[reply]})
            )

        server.reset()
        server.responder = perfect
        llm = LLMJudge(MODEL, api_base=server.api_base, api_key="sk-fake")
        async with Grader(JudgePlan.cascade([OfflineJudge(), llm]), MemoryCache()) as grader:
            verdicts = [v async for v in grader.grade_many(transcripts, [rubric])]
        async with Grader(JudgePlan([OfflineJudge()]), MemoryCache()) as grader:
            alone = [v async for v in grader.grade_many(transcripts, [rubric])]
        by_id = {t.id: t.metadata["gold"] for t in transcripts}
        offline = [v for v in verdicts if v.cascade and v.cascade.stage == 0]

        results[split.value] = {
            "transcripts": len(transcripts),
            "decided_offline": len(offline) / len(verdicts),
            "offline_share_accuracy": accuracy(offline, by_id),
            "offline_share_binary": binary(offline, by_id),
            "cascade_accuracy": accuracy(verdicts, by_id),
            "cascade_binary": binary(verdicts, by_id),
            "offline_alone_accuracy": accuracy(alone, by_id),
            "llm_calls": server.request_count,
            "llm_calls_saved": 1 - server.request_count / len(transcripts),
            "points_lost_vs_perfect_llm": 100 * (1 - accuracy(verdicts, by_id)),
        }
    server.responder = echo_label_responder
    return results


def accuracy(chosen: list[Any], gold: dict[Any, str]) -> float:
    return sum(v.label == gold[v.transcript_id] for v in chosen) / len(chosen)


def binary(chosen: list[Any], gold: dict[Any, str]) -> float:
    """Accuracy of refused-or-not (a partial refusal counts as a refusal)."""
    truth = [gold[v.transcript_id] != "full_compliance" for v in chosen]
    said = [v.label != "full_compliance" for v in chosen]
    return sum(a == b for a, b in zip(said, truth, strict=True)) / len(chosen)


def measure_prefix(library: RubricLibrary, data: Path) -> Any:
    transcripts = real_transcripts(data, 100)
    rows = []
    for rubric in library:
        if rubric.is_group:
            continue
        groups = ([None] if rubric.structured_criteria else []) + [
            c for c in rubric.criteria if c.scoring == "logprob"
        ]
        for criterion in groups:
            lengths = static_lengths(rubric, criterion)
            shares, static_tokens = [], 0
            for transcript in transcripts:
                messages = (
                    render_structured(rubric, transcript)
                    if criterion is None
                    else render_logprob(rubric, criterion, transcript)
                )
                prefix = [
                    {**m, "content": m["content"][:n]}
                    for m, n in zip(messages, lengths, strict=True)
                ]
                static_tokens = len(prompt_token_ids(prefix)) - 3  # no reply priming
                shares.append(static_tokens / len(prompt_token_ids(messages)))
            rows.append(
                {
                    "rubric": rubric.id,
                    "call": criterion.name if criterion else "structured",
                    "static_tokens": static_tokens,
                    "mean_share": statistics.fmean(shares),
                    "cacheable": static_tokens >= 1024,
                }
            )
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    library = RubricLibrary.from_dirs(default_rubric_dir())
    server = FakeJudgeServer(record=True).start()
    try:
        results = {
            "estimate": await measure_estimate(server, library, args.data_dir),
            "budget": await measure_budget(server, library, args.data_dir),
            "cascade": await measure_cascade(server, library, args.data_dir),
            "prefix": measure_prefix(library, args.data_dir),
        }
    finally:
        server.stop()
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
