"""Prompt layout for provider prompt caching: every shipped rubric's static parts form a
byte-identical prefix with the transcript last; Anthropic gets a cache_control mark where it
ends; cached prompt tokens come back in verdicts and summaries, billed at the cached rate."""

from __future__ import annotations

from string import Template

import pytest

from judge.cache import MemoryCache
from judge.grading import Grader
from judge.judges import LLMJudge
from judge.plan import JudgePlan
from judge.prompt import DYNAMIC_FIELDS, render_logprob, render_structured, static_lengths
from judge.rubric import Criterion, Rubric, RubricLibrary
from judge.testing.fake_server import FakeJudgeServer
from judge.transcript import Message, Subject, Transcript, TranscriptGroup
from judge.transports.litellm import with_cache_breakpoint

SENTINEL = "\x00field\x00"


def subject(rubric: Rubric, seed: int) -> Subject:
    first = Transcript.from_prompt(
        f"Question {seed}: what is {seed} + {seed}?",
        f"Answer {seed}: it is {2 * seed}, I think.",
        system=f"You are assistant number {seed}.",
        id=f"t{seed}",
        metadata={"gold": str(seed), "group": "g", "variant": "a", "identity": "Claude"},
    )
    if not rubric.is_group:
        return first
    second = first.model_copy(
        update={
            "id": f"u{seed}",
            "messages": (*first.messages, Message(role="user", content="Are you sure?"),
                         Message(role="assistant", content=f"Yes, {2 * seed}.")),
            "metadata": {**first.metadata, "variant": "b"},
        }
    )  # fmt: skip
    return TranscriptGroup.of("g", [first, second])


def calls(library: RubricLibrary) -> list[tuple[Rubric, Criterion | None]]:
    found: list[tuple[Rubric, Criterion | None]] = []
    for rubric in library:
        if rubric.structured_criteria:
            found.append((rubric, None))
        found += [(rubric, c) for c in rubric.criteria if c.scoring == "logprob"]
    return found


def render(rubric: Rubric, criterion: Criterion | None, seed: int) -> list[str]:
    if criterion is None:
        messages = render_structured(rubric, subject(rubric, seed))
    else:
        messages = render_logprob(rubric, criterion, subject(rubric, seed))
    return [m["content"] for m in messages]


def test_every_shipped_rubric_puts_its_static_parts_first(library: RubricLibrary) -> None:
    for rubric, criterion in calls(library):
        lengths = static_lengths(rubric, criterion)
        one, other = render(rubric, criterion, 1), render(rubric, criterion, 2)
        for length, a, b in zip(lengths, one, other, strict=True):
            assert a[:length] == b[:length]  # byte-identical for every transcript
        shared = sum(lengths)
        assert shared > 0.5 * sum(len(text) for text in one), rubric.id
        # what follows the prefix is the transcript's, apart from a few tags between fields
        templates = (
            [rubric.prompt.system, rubric.prompt.user]
            if criterion is None and rubric.prompt
            else [criterion.prompt if criterion and criterion.prompt else ""]
        )
        filled = [
            Template(t).safe_substitute(dict.fromkeys(DYNAMIC_FIELDS, SENTINEL)) for t in templates
        ]
        after = "".join(filled)[shared:].replace(SENTINEL, "")
        assert len(after.strip()) < 60, (rubric.id, after)


def test_the_cache_mark_ends_the_static_prefix() -> None:
    messages = [{"role": "system", "content": "rules"}, {"role": "user", "content": "examplesDATA"}]
    marked = with_cache_breakpoint(messages, (5, 8))
    assert marked[0] == messages[0]
    assert marked[1]["content"] == [
        {"type": "text", "text": "examples", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "DATA"},
    ]
    whole = with_cache_breakpoint(messages, (5, 0))
    assert whole[0]["content"] == [
        {"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}
    ]
    assert with_cache_breakpoint(messages, (0, 0)) == messages


async def test_anthropic_gets_the_mark_and_cached_tokens_are_billed_as_cached(
    fake_server: FakeJudgeServer, library: RubricLibrary
) -> None:
    rubric = library.get("refusal")
    judge = LLMJudge(
        "anthropic/claude-sonnet-4-5", api_base=fake_server.api_base[:-3], api_key="sk-fake"
    )
    batch = [subject(rubric, seed) for seed in range(3)]
    async with Grader(JudgePlan([judge]), MemoryCache(), concurrency=1) as grader:
        verdicts = [v async for v in grader.grade_many(batch, [rubric])]  # type: ignore[arg-type]
    assert all(v.status == "graded" for v in verdicts), verdicts[0].error
    first = fake_server.requests[0]
    marked = [b for m in first["messages"] for b in m["content"] if "cache_control" in b]
    user = render_structured(rubric, batch[0])[1]["content"]
    assert [b["text"] for b in marked] == [user[: static_lengths(rubric)[1]]]
    cached = [v.judges[0].cached_input_tokens or 0 for v in verdicts]
    assert cached[0] == 0 and cached[1] == cached[2] > 0  # written once, then read
    assert grader.totals.cached_input_tokens == 2 * cached[1]
    price = judge.prices()
    assert price is not None and price.cached_input is not None
    second = verdicts[1].judges[0]
    assert second.input_tokens and second.output_tokens and second.cost_usd
    uncached = price.of(second.input_tokens, second.output_tokens)
    saved = cached[1] * (price.input - price.cached_input)
    assert second.cost_usd == pytest.approx(uncached - saved)
    written = verdicts[0].judges[0]  # the first call wrote the prefix, at Anthropic's premium
    assert written.input_tokens and written.output_tokens and written.cost_usd
    assert written.cost_usd > price.of(written.input_tokens, written.output_tokens)


async def test_openai_caches_long_prefixes_by_itself(
    fake_server: FakeJudgeServer, library: RubricLibrary
) -> None:
    refusal = library.get("refusal")
    data = refusal.model_dump()
    long = Rubric.model_validate({**data, "examples": data["examples"] * 4})  # a longer prefix
    short_judge = LLMJudge("openai/gpt-4o-mini", api_base=fake_server.api_base, api_key="sk")
    async with Grader(JudgePlan([short_judge]), MemoryCache(), concurrency=1) as grader:
        for rubric in (refusal, long):
            batch = [subject(rubric, seed) for seed in range(3)]
            verdicts = [v async for v in grader.grade_many(batch, [rubric])]  # type: ignore[arg-type]
            cached = [v.judges[0].cached_input_tokens or 0 for v in verdicts]
            if rubric is refusal:
                assert cached == [0, 0, 0]  # under OpenAI's 1,024-token minimum
            else:
                assert cached[0] == 0 and cached[1] >= 1024 and cached[1] % 128 == 0
