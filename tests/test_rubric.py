"""Rubric files: validation, decision rules, content hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from judge.cli import main
from judge.errors import RubricError
from judge.rubric import (
    Condition,
    Criterion,
    Derived,
    FlagRule,
    Label,
    Rubric,
    RubricLibrary,
    Scale,
    default_rubric_dir,
    load_rubric,
    yaml_problem,
)


def test_every_shipped_rubric_validates(library: RubricLibrary) -> None:
    ids = {rubric.id for rubric in library}
    assert {"refusal", "emergent_misalignment"} <= ids
    for path in default_rubric_dir().glob("*.yaml"):
        assert load_rubric(path).id == path.stem


def write(tmp_path: Path, document: dict[str, Any], name: str | None = None) -> Path:
    path = tmp_path / f"{name or document['id']}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def refusal_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((default_rubric_dir() / "refusal.yaml").read_text())
    return document


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(critera=[]), "critera: is not a field here (a typo?)"),
        (lambda d: d["criteria"][0]["labels"][0].update(flaged=True), "flaged"),
        (lambda d: d["prompt"].update(user="$transcript $answr"), "unknown prompt placeholder"),
        (lambda d: d["prompt"].update(user="costs $ 5"), "stray '$'"),
        (lambda d: d["criteria"][0].update(scoring="logprob"), "logprob scoring needs a scale"),
        (lambda d: d.update(flag={"all": [{"criterion": "refusal", "lt": 3}]}), "no comparison"),
        (lambda d: d.update(flag={"all": [{"criterion": "nope"}]}), "no criterion 'nope'"),
        (lambda d: d["examples"][0]["output"].update(refusal="maybe"), "example 1: refusal: must"),
        (lambda d: d.update(requires=["telepathy"]), "requires"),
        (lambda d: d.pop("prompt"), "structured criteria need the rubric's 'prompt'"),
    ],
)
def test_invalid_rubrics_say_what_is_wrong(tmp_path: Path, edit: Any, message: str) -> None:
    document = refusal_document()
    edit(document)
    with pytest.raises(RubricError, match=r"refusal\.yaml") as error:
        load_rubric(write(tmp_path, document))
    assert message in str(error.value)


def test_rubric_id_must_match_its_file_name(tmp_path: Path) -> None:
    with pytest.raises(RubricError, match="must match the file name"):
        load_rubric(write(tmp_path, refusal_document(), name="other"))


def test_hash_changes_with_content_not_formatting(tmp_path: Path) -> None:
    document = refusal_document()
    original = load_rubric(default_rubric_dir() / "refusal.yaml")
    reformatted = tmp_path / "refusal.yaml"
    reformatted.write_text("# a comment\n" + yaml.safe_dump(document, default_flow_style=True))
    assert load_rubric(reformatted).content_hash == original.content_hash

    document["criteria"][0]["labels"][1]["description"] += " Also silence."
    assert load_rubric(write(tmp_path, document)).content_hash != original.content_hash


def test_label_flags_and_scale_rules(refusal: Rubric, em: Rubric) -> None:
    assert refusal.is_flagged({"refusal": "partial_refusal"})
    assert not refusal.is_flagged({"refusal": "full_compliance"})
    assert em.is_flagged({"aligned": 29.9, "coherent": 50.1})
    assert not em.is_flagged({"aligned": 30, "coherent": 90})
    assert not em.is_flagged({"aligned": 5, "coherent": 50})


def test_custom_directory_overrides_shipped_rubric(tmp_path: Path) -> None:
    document = refusal_document()
    document["version"] = "2"
    write(tmp_path, document)
    library = RubricLibrary.from_dirs(default_rubric_dir(), tmp_path)
    assert library.get("refusal").version == "2"
    with pytest.raises(RubricError, match="available: char_coherence, char_identity, "):
        library.get("sycophancy")


def test_output_schema_puts_reasoning_first(refusal: Rubric) -> None:
    schema = refusal.response_schema
    assert list(schema["properties"]) == ["reasoning", "evidence", "refusal"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["reasoning", "evidence", "refusal"]


def test_validate_reports_every_problem_of_every_file_in_plain_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fields = refusal_document()
    fields.update(id="Refusal-2", colour="blue")
    fields["criteria"][0]["labels"][0]["name"] = True  # YAML's unquoted yes
    fields["criteria"][0]["labels"].append({"name": "x", "description": "d"})
    (tmp_path / "fields.yaml").write_text(yaml.safe_dump(fields))
    cross = refusal_document()
    cross.update(id="cross", flag={"any": [{"criterion": "nope"}]})
    cross["prompt"]["system"] += " $bogus"
    (tmp_path / "cross.yaml").write_text(yaml.safe_dump(cross))
    (tmp_path / "broken.yaml").write_text("id: [unclosed\n")

    assert main(["rubrics", "validate", str(tmp_path)]) == 2

    err = capsys.readouterr().err
    expected = [
        "broken.yaml: line 2, column 1: not valid YAML (expected ',' or ']'",
        "cross.yaml: flag condition: no criterion 'nope'",
        "cross.yaml: unknown prompt placeholder(s) ['bogus']",
        "fields.yaml: id: 'Refusal-2' must match the file name ('fields')",
        "fields.yaml: id: must be lowercase letters, digits and underscores",
        "fields.yaml: criteria[0].labels[0].name: must be text (YAML reads yes",
        "fields.yaml: criteria[0].labels[3].flagged: is required",
        "fields.yaml: colour: is not a field here (a typo?)",
    ]
    for line in expected:
        assert line in err, line
    assert f"{len(expected)} problems in the rubrics" in err
    assert "Value error" not in err and "(top)" not in err and "Tuple should" not in err


def scale_criterion(name: str, low: int = 0, high: int = 100) -> Criterion:
    return Criterion(
        name=name,
        description="d",
        scale=Scale(min=low, max=high),
        scoring="logprob",
        prompt="$answer",
    )


def scored_rubric(flag: FlagRule | None = None, derived: tuple[Derived, ...] = ()) -> Rubric:
    return Rubric(
        id="scored",
        version="1",
        category="c",
        description="d",
        criteria=(scale_criterion("x"), scale_criterion("y", 1, 5)),
        derived=derived,
        flag=flag,
    )


@pytest.mark.parametrize(
    ("op", "below", "at", "above"),
    [("lt", True, False, False), ("le", True, True, False), ("gt", False, False, True),
     ("ge", False, True, True)],
)  # fmt: skip
def test_each_comparison_holds_exactly_on_its_side_of_the_bound(
    op: str, below: bool, at: bool, above: bool
) -> None:
    condition = Condition.model_validate({"criterion": "x", op: 30})
    assert [condition.holds(None, value) for value in (29.9, 30, 30.1)] == [below, at, above]
    assert condition.comparisons == {op: 30}


def test_a_bound_of_zero_is_a_bound() -> None:
    condition = Condition(criterion="x", le=0)
    assert condition.comparisons == {"le": 0}
    assert condition.holds(None, 0) and not condition.holds(None, 0.5)


def test_several_comparisons_on_one_criterion_must_all_hold() -> None:
    between = Condition(criterion="x", gt=10, lt=20)
    assert [between.holds(None, v) for v in (5, 15, 25)] == [False, True, False]


def test_a_label_condition_holds_for_the_flagged_labels_only(refusal: Rubric) -> None:
    criterion = refusal.criteria[0]
    condition = Condition(criterion=criterion.name)
    flagged = {label.name for label in criterion.labels or () if label.flagged}
    assert flagged and flagged != set(criterion.label_names)
    for name in criterion.label_names:
        assert condition.holds(criterion, name) is (name in flagged)
    assert not condition.holds(criterion, "not_a_label")


@given(
    x=st.floats(0, 100), y=st.floats(1, 5), x_bound=st.integers(0, 100), y_bound=st.integers(1, 5)
)
def test_all_needs_every_condition_and_any_needs_one(
    x: float, y: float, x_bound: int, y_bound: int
) -> None:
    conditions = (Condition(criterion="x", lt=x_bound), Condition(criterion="y", ge=y_bound))
    values: dict[str, str | float] = {"x": x, "y": y}
    holds = [x < x_bound, y >= y_bound]
    assert scored_rubric(FlagRule(all=conditions)).is_flagged(values) is all(holds)
    assert scored_rubric(FlagRule(any=conditions)).is_flagged(values) is any(holds)


def test_a_rule_needs_exactly_one_of_all_and_any() -> None:
    condition = Condition(criterion="x", lt=1)
    for arguments in ({}, {"all": (condition,), "any": (condition,)}):
        with pytest.raises(ValueError, match="exactly one of 'all' or 'any'"):
            FlagRule.model_validate(arguments)
    assert FlagRule(any=(condition,)).conditions == (condition,)
    assert FlagRule(all=(condition,)).conditions == (condition,)


def test_by_default_any_flagged_label_flags(library: RubricLibrary) -> None:
    rubric = library.get("char_identity")
    rule = rubric.flag_rule
    labelled = [c.name for c in rubric.criteria if c.labels is not None]
    assert rubric.flag is None and rule.any is not None and rule.all is None
    assert [c.criterion for c in rule.conditions] == labelled


def test_derived_scores_come_from_the_scale_values_and_can_flag(library: RubricLibrary) -> None:
    rubric = library.get("compliance_quality")
    values: dict[str, str | float] = {"refused": 0, "convincing": 3, "specific": 4}
    assert rubric.derive(values) == {"strongreject": 0.625}
    assert not rubric.is_flagged(values)
    assert rubric.is_flagged({**values, "specific": 2})  # 0.375 < 0.5
    assert rubric.is_flagged({**values, "refused": 1})
    mixed = scored_rubric(
        FlagRule(all=(Condition(criterion="gap", gt=0),)),
        (Derived(name="gap", description="d", formula="x - y"),),
    )
    assert mixed.derive({"x": 3, "y": 2}) == {"gap": 1.0}
    assert mixed.is_flagged({"x": 3, "y": 2}) and not mixed.is_flagged({"x": 2, "y": 2})


def test_a_scale_needs_its_minimum_below_its_maximum() -> None:
    assert Scale(min=0, max=1).max == 1
    with pytest.raises(ValueError, match=r"scale min \(3\) must be below max \(3\)"):
        Scale(min=3, max=3)


def test_a_criterion_is_one_kind_with_distinct_labels() -> None:
    label = Label(name="a", description="d", flagged=True)
    with pytest.raises(ValueError, match="needs exactly one of 'labels' or 'scale'"):
        Criterion(name="c", description="d")
    with pytest.raises(ValueError, match="needs at least two distinct labels"):
        Criterion(name="c", description="d", labels=(label, label))
    with pytest.raises(ValueError, match="needs at least two distinct labels"):
        Criterion(name="c", description="d", labels=(label,))
    with pytest.raises(ValueError, match="logprob scoring needs its own 'prompt'"):
        Criterion(name="c", description="d", scale=Scale(min=0, max=1), scoring="logprob")
    with pytest.raises(ValueError, match="belong to logprob criteria"):
        Criterion(name="c", description="d", scale=Scale(min=0, max=1), escapes=("X",))


def test_a_yaml_error_is_one_line_with_its_place_when_it_has_one() -> None:
    assert yaml_problem(yaml.YAMLError("it broke\nhere")) == "not valid YAML (it broke)"
    with pytest.raises(yaml.YAMLError) as error:
        yaml.safe_load("a: 1\nb: [2")
    assert yaml_problem(error.value) == (
        "line 2, column 6: not valid YAML (expected ',' or ']', but got '<stream end>')"
    )


def test_the_output_model_is_what_the_judge_is_told_and_held_to() -> None:
    rubric = load_rubric(default_rubric_dir() / "compliance_quality.yaml")  # built here, fresh
    model = rubric.output_model
    assert model.__name__ == "ComplianceQualityOutput"
    properties = rubric.response_schema["properties"]
    assert properties["reasoning"]["description"] == "Your reasoning, written before any decision."
    assert properties["evidence"]["description"] == "Quotes supporting the decision."
    for criterion in rubric.criteria:
        assert properties[criterion.name]["description"] == criterion.description
    valid = {"reasoning": "r", "refused": 0, "convincing": 1, "specific": 5}
    assert model.model_validate(valid).model_dump()["evidence"] == []
    for wrong in ({"convincing": 0}, {"specific": 6}, {"refused": 2}, {"extra": "x"}):
        with pytest.raises(ValidationError):
            model.model_validate({**valid, **wrong})
    identity = load_rubric(default_rubric_dir() / "char_identity.yaml")
    for field in identity.fields:
        assert identity.response_schema["properties"][field.name]["description"] == (
            field.description
        )


def test_a_rubric_file_that_cannot_be_read_or_is_not_a_mapping_says_so(tmp_path: Path) -> None:
    with pytest.raises(RubricError, match=r"nope\.yaml: cannot read the file: No such file"):
        load_rubric(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(RubricError, match=r"list\.yaml: a rubric file must hold a mapping$"):
        load_rubric(tmp_path / "list.yaml")
    document = refusal_document()
    document.update(id="two", critera=[])
    path = write(tmp_path, document, name="other")
    with pytest.raises(RubricError) as error:
        load_rubric(path)
    lines = str(error.value).split("\n")
    assert len(lines) == 2 and all(line.startswith(f"{path}: ") for line in lines)
    with pytest.raises(RubricError, match=r"^rubric directory .*missing does not exist$"):
        RubricLibrary.from_dirs(tmp_path / "missing")


def test_every_bad_flag_condition_is_reported_with_what_to_do(tmp_path: Path) -> None:
    document = refusal_document()
    document["flag"] = {"any": [{"criterion": "nope"}, {"criterion": "refusal", "lt": 3},
                                {"criterion": "other"}]}  # fmt: skip
    with pytest.raises(RubricError) as error:
        load_rubric(write(tmp_path, document))
    message = str(error.value)
    assert "flag condition: no criterion 'nope'" in message
    assert "flag condition: no criterion 'other'" in message
    assert (
        "flag condition on label criterion 'refusal' takes no comparison; it holds when the "
        "label is marked flagged"
    ) in message
    quality: dict[str, Any] = yaml.safe_load(
        (default_rubric_dir() / "compliance_quality.yaml").read_text()
    )
    quality["flag"] = {"any": [{"criterion": "strongreject"}, {"criterion": "refused"}]}
    with pytest.raises(RubricError) as error:
        load_rubric(write(tmp_path, quality))
    assert "flag condition on 'strongreject' needs lt/le/gt/ge" in str(error.value)
    assert "flag condition on scale criterion 'refused' needs lt, le, gt or ge" in str(error.value)


def test_asking_for_a_criterion_that_does_not_exist_names_those_that_do(
    library: RubricLibrary,
) -> None:
    em = library.get("emergent_misalignment")
    with pytest.raises(ValueError, match=r"^no criterion 'x' \(criteria: aligned, coherent\)$"):
        em.criterion("x")
