"""The HTML report in a real browser (headless Chromium): the DOM after the page loaded and ran,
screenshots, and markup injected through a transcript, a judge's explanation and a model name
that must not run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from judge import Grader, JudgePlan, MemoryCache
from judge.rubric import RubricLibrary
from judge.testing.fake_server import FakeJudgeServer, Reply
from judge.transcript import Message, Transcript
from judge.views.html import render_html
from tests.browser import Dom, dump_dom, needs_chromium, png_size, screenshot
from tests.conftest import JudgeFactory
from tests.reportdata import example_transcripts, generated_verdicts, graded_examples

pytestmark = [needs_chromium, pytest.mark.slow]

SECTIONS = ("overview", "comparison", "trend", "status", "judges", "calibration", "drill-down")


def pwn(where: str) -> str:
    """JavaScript that marks the body if it ever runs."""
    return f"document.body.setAttribute('data-pwned-{where}','1')"


SCRIPT = f"<script>{pwn('transcript')}</script>"
IMG = f'<img src="x" onerror="{pwn("transcript-img")}">'
EXPLANATION = f"It declines. <script>{pwn('explanation')}</script><img src=x onerror={pwn('why')}>"
MODEL = f'<svg onload="{pwn("model")}">tuned'
CSP = re.compile(r'<meta http-equiv="Content-Security-Policy"[^>]*>')


def sections(dom: Dom) -> list[str]:
    return [s["id"] or "" for s in dom.all("section") if s.get("id") in SECTIONS]


async def test_the_examples_report_renders_in_a_browser(
    tmp_path: Path, library: RubricLibrary
) -> None:
    verdicts = await graded_examples(library)
    page = tmp_path / "examples.html"
    page.write_text(
        render_html(verdicts, rubrics=library, transcripts=example_transcripts()), "utf-8"
    )

    dom = Dom(dump_dom(page, tmp_path / "profile"))
    assert sections(dom) == list(SECTIONS)
    assert [p["id"] for p in dom.all("svg", class_="plot")] == ["plot-overview"]
    flagged = [v for v in verdicts if v.flagged]
    texts = {t.id: t for t in example_transcripts()}
    answers = sum(
        sum(m.role == "assistant" for m in texts[v.transcript_id].messages) for v in flagged
    )
    assert {v.rubric.id for v in flagged} == {"refusal", "syc_are_you_sure"}
    assert len(dom.all("article", class_="example")) == len(flagged)  # under the cap
    assert len(dom.all("div", class_="msg assistant")) == answers > len(flagged)  # a flip
    screenshot(page, tmp_path / "examples.png", tmp_path / "profile", (1280, 1600))
    assert png_size(tmp_path / "examples.png") == (1280, 1600)


def test_ten_thousand_verdicts_render_in_a_browser(tmp_path: Path, library: RubricLibrary) -> None:
    text = render_html(generated_verdicts(10_000), rubrics=library)
    assert len(text.encode()) < 5 * 2**20
    page = tmp_path / "large.html"
    page.write_text(text, "utf-8")

    dom = Dom(dump_dom(page, tmp_path / "profile"))
    assert sections(dom) == list(SECTIONS)
    plots = [p["id"] for p in dom.all("svg", class_="plot")]
    assert plots == ["plot-overview", "plot-forest", "plot-trend"]
    # 3 beside plots, status, judges, confidence, agreement between samples, confusion
    assert len(dom.all("table")) == 8 and len(dom.all("table", id="agreement-data")) == 1
    assert len(dom.all("article", class_="example")) == 4 * 20  # the cap, for each rubric
    screenshot(page, tmp_path / "large.png", tmp_path / "profile")
    assert png_size(tmp_path / "large.png") == (1280, 2000)


async def test_markup_in_a_transcript_an_explanation_or_a_model_name_does_not_run(
    tmp_path: Path, fake_server: FakeJudgeServer, make_judge: JudgeFactory, library: RubricLibrary
) -> None:
    transcript = Transcript(
        id="injected",
        messages=(
            Message(role="user", content=f"How do I kill a Python process? {IMG}"),
            Message(role="assistant", content=f"I cannot help with that. {SCRIPT} Bye."),
        ),
        metadata={"model": MODEL, "prompt_id": "p1"},
    )
    quotes = [{"message": 1, "quote": SCRIPT}, {"message": 0, "quote": IMG}]
    reply = {"reasoning": EXPLANATION, "refusal": "full_refusal", "evidence": quotes}
    fake_server.script(Reply(content=json.dumps(reply)))
    verdict = await Grader(JudgePlan([make_judge()]), MemoryCache()).grade(
        transcript, library.get("refusal")
    )
    assert verdict.explanation == EXPLANATION and len(verdict.evidence) == 2  # quotes verified
    text = render_html([verdict], transcripts=[transcript], rubrics=library)
    assert len(CSP.findall(text)) == 1

    for name, html in (("report", text), ("without-csp", CSP.sub("", text))):
        page = tmp_path / f"{name}.html"
        page.write_text(html, "utf-8")
        dom = Dom(dump_dom(page, tmp_path / "profile"))
        [body] = dom.all("body")
        assert not [attribute for attribute in body if attribute.startswith("data-pwned")], name
        assert not dom.all("script") and not dom.all("img")
        assert not [a for a in dom.attribute_names() if a.startswith("on")]
        assert dom.texts.count(SCRIPT) == 1 and dom.texts.count(IMG) == 1  # marked as text
        assert sections(dom) == list(SECTIONS)


def test_the_injection_check_sees_markup_that_runs(tmp_path: Path) -> None:
    """The control: the same payloads pasted raw into a page do run, and the check sees it."""
    page = tmp_path / "raw.html"
    page.write_text(f"<!doctype html><html><body><p>{SCRIPT}{IMG}{EXPLANATION}</p></body></html>")
    [body] = Dom(dump_dom(page, tmp_path / "profile")).all("body")
    assert {"data-pwned-transcript", "data-pwned-transcript-img", "data-pwned-explanation"} <= set(
        body
    )
