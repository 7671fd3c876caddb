"""The HTML report as text: its sections, plots, numbers, escaping and evidence marks, and
``judge report --html`` (the browser tests are in test_html_browser.py)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from judge.agreement import judge_agreement
from judge.cli import main
from judge.errors import ErrorKind, UsageError
from judge.rubric import RubricLibrary
from judge.transcript import Transcript
from judge.verdict import Evidence, JudgeResult, RubricRef, Status, Verdict, VerdictError
from judge.views import evidence
from judge.views.html import render_html
from tests.browser import Dom
from tests.reportdata import EXAMPLES, generated_verdicts, graded_examples

SECTIONS = ("overview", "comparison", "trend", "status", "judges", "calibration", "drill-down")


def test_a_quote_is_marked_white_space_aside_and_everything_is_escaped() -> None:
    text = "Sure. <b>Step one</b>:\n   open   the <script>x()</script> door."
    html, found = evidence.mark(text, ["<b>Step one</b>: open the <script>x()</script>", "absent"])
    assert found == 1
    assert str(html) == (
        "Sure. <mark>&lt;b&gt;Step one&lt;/b&gt;:\n   open   the "
        "&lt;script&gt;x()&lt;/script&gt;</mark> door."
    )


def test_a_long_message_is_cut_to_its_start_and_the_windows_around_its_quotes() -> None:
    text = "a " * 5000 + "the NEEDLE is here" + " b" * 5000
    html, found = evidence.mark(text, ["NEEDLE is here"], limit=4000)
    assert found == 1 and "<mark>NEEDLE is here</mark>" in html
    assert len(html) < 2000 and html.count("[&hellip;") == 2
    rest = len(text) - (text.index("NEEDLE is here") + len("NEEDLE is here") + evidence.CONTEXT)
    assert html.endswith(f"[&hellip; {rest} more characters]</span>")


@pytest.fixture(scope="module")
def generated_page(library: RubricLibrary) -> str:
    return render_html(generated_verdicts(2000), rubrics=library, drill_down=5)


def test_every_section_and_plot_is_there(generated_page: str) -> None:
    dom = Dom(generated_page)
    assert [s["id"] for s in dom.all("section") if s.get("id") in SECTIONS] == list(SECTIONS)
    plots = dom.all("svg", class_="plot")
    assert [p["id"] for p in plots] == ["plot-overview", "plot-forest", "plot-trend"]
    for plot in plots:
        assert (
            plot["role"] == "img"
            and plot["aria-labelledby"] == f"{plot['id']}-title {plot['id']}-desc"
        )
    assert not dom.all("script") and "<script" not in generated_page


def test_the_tables_beside_the_plots_hold_their_numbers(generated_page: str) -> None:
    rows = {
        table: len(re.findall(r"<tr>", body.split("</table>")[0]))
        for table, body in re.findall(r'<table[^>]*id="([^"]+)"(.*?)</table>', generated_page, re.S)
    }
    # 4 rubrics x 5 checkpoints; 4 paired rubrics (first vs last step); header rows included
    assert rows["overview-data"] == 21 and rows["trend-data"] == 21 and rows["comparison-data"] == 5
    assert rows["status-data"] == 21 and rows["confusion-refusal"] == 5
    assert "ckpt-4000 minus ckpt-0000" in generated_page


def test_status_accounting_shows_reasons_and_error_kinds(library: RubricLibrary) -> None:
    verdicts = generated_verdicts(400)
    page = render_html(verdicts, by=["rubric"], rubrics=library)
    status = page.split('id="status-data"')[1].split("</table>")[0]
    refusal = next(row for row in status.split("<tr>") if ">refusal<" in row)
    mine = [v for v in verdicts if v.rubric.id == "refusal"]
    errors = sum(v.status == Status.ERROR for v in mine)
    reasons = [v.reason for v in mine if v.status == Status.NOT_APPLICABLE]
    assert f'<td class="err">{errors}' in refusal
    assert f"{reasons.count('it has no system prompt')}: it has no system prompt" in refusal


def verdict(model: str, prompt: str, flagged: bool, **fields: object) -> Verdict:
    made = Verdict(
        transcript_id=f"{model}-{prompt}",
        rubric=RubricRef(id="refusal", version="1", hash="h"),
        status=Status.GRADED,
        flagged=flagged,
        label="full_refusal" if flagged else "full_compliance",
        labels={"refusal": "full_refusal" if flagged else "full_compliance"},
        metadata={"model": model, "prompt_id": prompt},
    )
    return made.model_copy(update=fields)


def test_without_an_order_there_is_no_trend_and_no_default_comparison() -> None:
    page = render_html([verdict("a", "p", True), verdict("b", "p", False)])
    assert page.count('class="plot"') == 1
    assert "the models carry no order" in page and "--compare BASE TUNED" in page


def test_prompts_newly_flagged_for_the_tuned_model_come_first() -> None:
    verdicts = [verdict("base", f"p{i}", i == 0) for i in range(4)]
    verdicts += [verdict("tuned", f"p{i}", i in (0, 3)) for i in range(4)]
    page = render_html(verdicts, compare=("base", "tuned"))
    shown = re.findall(r"<h4>([^<]+)</h4>", page)
    assert shown == ["tuned-p3", "tuned-p0", "base-p0"]
    assert page.split("<h4>tuned-p3</h4>")[1].split("</header>")[0].count("badge new") == 1


def test_flagged_transcripts_are_capped_with_a_count_of_the_rest() -> None:
    page = render_html([verdict("m", f"p{i}", True) for i in range(7)], drill_down=3)
    assert page.count('class="example"') == 3 and "7 flagged, the first 3 shown" in page


def test_untrusted_text_is_escaped_everywhere() -> None:
    bad = "<script>document.title='x'</script><img src=x onerror=alert(1)>"
    transcript = Transcript.from_prompt("hi " + bad, "no " + bad, id="t")
    found = verdict(
        bad + r" $\notacommand$",  # not mathtext: a $ in a name is drawn as it is
        "p",
        True,
        transcript_id="t",
        explanation=bad,
        evidence=[Evidence(message=1, quote=bad)],
    )
    page = render_html([found], transcripts=[transcript], title=bad)
    dom = Dom(page)
    assert not dom.all("script") and not dom.all("img")
    assert not [name for name in dom.attribute_names() if name.startswith("on")]
    assert dom.texts.count(bad) == 1  # the quote, marked in the assistant's message
    assert page.count("&lt;script&gt;document.title=&#39;x&#39;&lt;/script&gt;") >= 5


def test_control_characters_in_names_do_not_break_the_plots() -> None:
    """matplotlib writes a name's control characters into the SVG as they are, which XML
    cannot hold (the page was a 500): the plots are drawn without them."""
    named = [verdict(f"ckpt\x13{n}\x00", "p", n % 2 == 0, transcript_id=f"t{n}") for n in range(4)]
    page = render_html(named, title="run\x1b[31m")
    plots = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert len(plots) >= 1
    assert not [plot for plot in plots if re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", plot)]


def test_a_judge_whose_calls_were_never_made_has_a_row_of_zeros() -> None:
    """The offline judge cannot grade every rubric: its calls for those are never made."""
    never = JudgeResult(model="offline", sample=0, criteria=("refusal",), attempts=0,
                        error=VerdictError(kind=ErrorKind.NO_JUDGE, message="cannot"))  # fmt: skip
    unmade = verdict("m", "p", False, status=Status.ERROR, judges=[never])
    page = render_html([unmade])  # the cache-hit share of no calls divided by zero
    row = '<th scope="row">offline</th><td>1</td><td>0</td><td>0</td><td>0</td>'
    assert row in page and "not made 1" in page


def test_the_svg_ids_are_unique_on_the_page_and_every_reference_resolves(
    generated_page: str,
) -> None:
    ids: list[str] = []
    references: set[str] = set()
    for svg in re.findall(r"<svg .*?</svg>", generated_page, re.S):
        for element in ET.fromstring(svg).iter():
            ids += [element.attrib["id"]] if "id" in element.attrib else []
            for value in element.attrib.values():
                references.update(re.findall(r"url\(#([^)]+)\)", value))
                references.update([value[1:]] if value.startswith("#") else [])
    assert len(ids) == len(set(ids)) > 100
    assert references and references <= set(ids)


def test_gold_labels_give_the_confusion_matrix(library: RubricLibrary) -> None:
    verdicts = [
        verdict("m", f"p{i}", i < 6, metadata={"model": "m", "prompt_id": f"p{i}", "gold": gold})
        for i, gold in enumerate(["full_refusal"] * 5 + ["full_compliance"] * 5)
    ]
    page = render_html(verdicts, rubrics=library)
    assert "accuracy <strong>90.0%</strong>" in page
    matrix = page.split('id="confusion-refusal"')[1].split("</table>")[0]
    cells = [int(n) for n in re.findall(r"<td style=[^>]*>(\d+)</td>", matrix)]
    assert cells == [4, 1, 0, 0, 5, 0, 0, 0, 0]  # gold rows x judge columns, the rubric's order
    assert render_html(verdicts).count("not those rubrics' definitions") == 1


def rows_of(page: str, table: str) -> list[list[str]]:
    """The body rows of a table of the page, each as the text of its cells."""
    body = page.split(f'id="{table}"')[1].split("</table>")[0].split("<tbody>")[1]
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in body.split("</tr>")[:-1]]


def test_agreement_between_samples_is_in_the_judges_section(generated_page: str) -> None:
    """The generated judge's two samples differ on 15% of verdicts: alpha per rubric criterion,
    as ``judge.agreement`` computes it; one judge model, so no kappa table."""
    judges = generated_page.split('id="judges"')[1].split("</section>")[0]
    assert 'id="agreement-data"' in judges and 'id="kappa-data"' not in judges
    expected = judge_agreement(generated_verdicts(2000), ["rubric"])
    shown = [(r[0], r[1], r[2], r[7], r[8]) for r in rows_of(judges, "agreement-data")]
    assert shown == [
        (
            a.group["rubric"],
            a.criterion,
            a.level,
            f"{a.alpha:.3f}",
            f"{a.ci_low:.3f} to {a.ci_high:.3f}",
        )
        for a in expected
    ]
    assert [row[:3] for row in shown] == [
        ("emergent_misalignment", "aligned", "interval"),
        ("emergent_misalignment", "coherent", "interval"),
        ("refusal", "refusal", "nominal"),
        ("syc_are_you_sure", "answer_change", "nominal"),
        ("sysprompt_adherence", "answer_change", "nominal"),
    ]


def test_two_judge_models_get_a_kappa_table() -> None:
    """Two judges that agree on 7 of 10 balanced labels: kappa (0.7 - 0.5) / 0.5 = 0.4."""
    pairs = [("full_refusal", "full_refusal")] * 4 + [("full_compliance", "full_compliance")] * 3
    pairs += [("full_refusal", "full_compliance")] + [("full_compliance", "full_refusal")] * 2

    def rated(a: str, b: str) -> list[JudgeResult]:
        return [
            JudgeResult(model=name, sample=0, criteria=("refusal",), values={"refusal": label})
            for name, label in (("judge-a", a), ("judge-b", b))
        ]

    verdicts = [
        verdict("m", f"p{i}", a == "full_refusal", judges=rated(a, b))
        for i, (a, b) in enumerate(pairs)
    ]
    page = render_html(verdicts)
    [kappa] = rows_of(page, "kappa-data")
    assert kappa[:7] == ["refusal", "refusal", "judge-a", "judge-b", "10", "70.0%", "0.400"]
    [alpha] = rows_of(page, "agreement-data")
    assert alpha[3:7] == ["2", "2", "10", "0"]  # judge models, raters, verdicts, missing


async def test_judge_report_html_writes_the_report(
    tmp_path: Path, library: RubricLibrary, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "verdicts.jsonl"
    verdicts = await graded_examples(library)
    path.write_text("".join(v.model_dump_json() + "\n" for v in verdicts))
    refusals = sum(bool(v.flagged) for v in verdicts if v.rubric.id == "refusal")
    out = tmp_path / "report.html"
    args = ["report", str(path), "--html", str(out), "--transcripts", str(EXAMPLES)]
    assert main([*args, "--order", "example-base,example-honly", "--drill-down", "2"]) == 0
    page = out.read_text()
    assert "wrote" in capsys.readouterr().err
    assert "example-honly minus example-base" in page and page.count('class="plot"') == 3
    assert f"{refusals} flagged, the first 2 shown" in page and refusals > 2
    assert "If you are having thoughts of harming anyone, please reach out" in page
    assert main([*args, "--order", "example-base,nobody"]) == 2
    assert "names models no verdict has: nobody" in capsys.readouterr().err
    with pytest.raises(UsageError):
        render_html([], order=["x"])


def test_no_graded_verdict_gives_a_page_that_says_so() -> None:
    failed = verdict("m", "p", False).model_copy(
        update={"status": Status.NOT_APPLICABLE, "flagged": None, "reason": "no system prompt"}
    )
    for verdicts in ([], [failed]):
        page = render_html(verdicts)
        assert 'class="plot"' not in page and "No verdict was graded" in page
    assert "1: no system prompt" in page
